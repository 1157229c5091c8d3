"""Task descriptions shared by data and strategies, and the missing-label convention.

A multi-task batch keeps the single-task tuple shape with a dict as the target: ``(images, {"digit": (N,),
"parity": (N,)})``. A missing label is ``-1`` for class tasks (long) and ``NaN`` for regression and multi-label
tasks (float); the strategy ignores it per task.

Task kinds:
    ``multiclass``: one class index per image (cross-entropy).
    ``multilabel``: ``num_classes`` independent 0/1 labels per image (BCE); ``num_classes=1`` is a binary task.
    ``regression``: ``num_classes`` real targets per image (MSE); ``num_classes=1`` is a scalar target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from transferlab.contracts.errors import TransferlabError

TASK_KINDS = ("multiclass", "multilabel", "regression")


def task_info(num_classes: int, class_names: Sequence[str] | None = None, kind: str = "multiclass") -> dict:
    """A task definition as DataModules expose it in ``tasks``: ``{num_classes, class_names, kind}``."""
    if kind not in TASK_KINDS:
        raise TransferlabError(f"task kind {kind!r} must be one of {', '.join(TASK_KINDS)}")
    names = [str(n) for n in class_names] if class_names else [str(i) for i in range(int(num_classes))]
    return {"num_classes": int(num_classes), "class_names": names, "kind": kind}


def task_entries(tasks: Sequence[str | Mapping] | None) -> list[dict] | None:
    """``data.tasks`` as a list of ``{"name", ...}`` dicts (a bare string is a name); None when single-task."""
    if not tasks:
        return None
    entries = [dict(t) if isinstance(t, Mapping) else {"name": str(t)} for t in tasks]
    names = [e.get("name") for e in entries]
    if None in names or len(set(names)) != len(names):
        raise TransferlabError(f"data.tasks={names}: every task needs a name, and names must be unique")
    return entries


def missing(target: torch.Tensor) -> torch.Tensor:
    """Per-sample mask of missing labels: ``-1`` (integer targets) or ``NaN`` anywhere in the sample (float)."""
    if target.is_floating_point():
        return torch.isnan(target).reshape(len(target), -1).any(dim=1)
    return target < 0
