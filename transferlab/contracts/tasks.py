"""Task descriptions shared by data and strategies: what a DataModule offers (``task_info``), what a strategy
declares (``resolve_tasks``), and the missing-label convention.

A multi-task batch keeps the single-task tuple shape with a dict as the target: ``(images, {"digit": (N,),
"parity": (N,)})``. A missing label is ``-1`` for class tasks (long) and ``NaN`` for regression and multi-label
tasks (float); the strategy ignores it per task.

Task kinds:
    ``multiclass``: one class index per image (cross-entropy).
    ``multilabel``: ``num_classes`` independent 0/1 labels per image (BCE); ``num_classes=1`` is a binary task.
    ``regression``: ``num_classes`` real targets per image (MSE); ``num_classes=1`` is a scalar target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from transferlab.contracts.checks import check_positive
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


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_RESERVED = set(dir(nn.ModuleDict()))  # a task name becomes a ModuleDict key
SPEC_KEYS = {"name", "num_classes", "kind", "class_names", "weight", "label_smoothing", "class_weights",
             "head_hidden", "head_dropout"}


def _resolve_one(spec: Mapping, data: Mapping | None, defaults: Mapping) -> dict:
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
        raise TransferlabError(f"strategy.tasks: bad task name {name!r} (letters, digits, _ and -; not a "
                               f"reserved word such as 'keys')")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise TransferlabError(f"strategy.tasks[{name}]: unknown key(s) {unknown}; use {sorted(SPEC_KEYS)}")
    data = data or {}
    resolved = {**defaults, **{k: v for k, v in spec.items() if v is not None}}
    for key in ("num_classes", "kind"):
        ours, theirs = spec.get(key), data.get(key)
        if ours is not None and theirs is not None and ours != theirs:
            raise TransferlabError(f"strategy.tasks[{name}].{key}={ours} but the data's task has {key}={theirs}")
        resolved[key] = ours if ours is not None else theirs
    if resolved["num_classes"] is None:
        raise TransferlabError(f"strategy.tasks[{name}].num_classes is null and the data does not define task "
                               f"{name!r}; set num_classes or pick a task the data derives")
    resolved["kind"] = resolved["kind"] or "multiclass"
    if resolved["kind"] not in TASK_KINDS:
        raise TransferlabError(f"strategy.tasks[{name}].kind={resolved['kind']!r} must be one of {TASK_KINDS}")
    resolved["num_classes"] = int(resolved["num_classes"])
    resolved["class_names"] = list(data.get("class_names") or spec.get("class_names") or
                                   [str(i) for i in range(resolved["num_classes"])])
    resolved["weight"] = check_positive(f"strategy.tasks[{name}].weight", resolved["weight"], allow_zero=True)
    if not 0.0 <= float(resolved["label_smoothing"]) < 1.0:
        raise TransferlabError(f"strategy.tasks[{name}].label_smoothing={resolved['label_smoothing']} "
                               "must be in [0, 1)")
    weights = resolved.get("class_weights")
    if weights is not None and (resolved["kind"] != "multiclass" or len(weights) != resolved["num_classes"]):
        raise TransferlabError(f"strategy.tasks[{name}].class_weights needs a multiclass task and one weight per "
                               f"class ({resolved['num_classes']}), got {list(weights)}")
    if not 0.0 <= float(resolved["head_dropout"]) < 1.0:
        raise TransferlabError(f"strategy.tasks[{name}].head_dropout={resolved['head_dropout']} must be in [0, 1)")
    resolved["head_hidden"] = [int(h) for h in resolved["head_hidden"] or ()]
    return resolved


def resolve_tasks(tasks: Sequence[Mapping], data_tasks: Mapping[str, Mapping] | None, head_hidden=(),
                  head_dropout: float = 0.0, label_smoothing: float = 0.0) -> list[dict]:
    """Complete task specs: ``num_classes``, ``kind`` and class names from the data where left null.

    Args:
        tasks: ``strategy.tasks``, each ``{name, num_classes, kind, weight, label_smoothing, class_weights,
            head_hidden, head_dropout}``; only ``name`` is required when the data defines the task.
        data_tasks: the DataModule's ``tasks`` (``{name: {num_classes, class_names, kind}}``), or None.
        head_hidden, head_dropout, label_smoothing: defaults for tasks that do not set their own.

    Returns:
        One plain dict per task, every key filled (checkpoint-safe hyperparameters).
    """
    if not tasks:
        raise TransferlabError("strategy.tasks is empty; declare at least one task, e.g. [{name: digit}]")
    names = [t.get("name") for t in tasks]
    if len(set(names)) != len(names):
        raise TransferlabError(f"strategy.tasks: duplicated task names in {names}")
    if data_tasks is not None:
        absent = [n for n in names if n not in data_tasks]
        if absent:
            raise TransferlabError(f"strategy.tasks {absent} are not tasks of the data (it has {sorted(data_tasks)})")
    defaults = {"weight": 1.0, "label_smoothing": label_smoothing, "class_weights": None,
                "head_hidden": list(head_hidden or ()), "head_dropout": head_dropout}
    return [_resolve_one(t, (data_tasks or {}).get(t.get("name")), defaults) for t in tasks]
