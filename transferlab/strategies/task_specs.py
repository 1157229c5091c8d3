"""Task declarations of the multitask strategy: resolving them against the data, per-task losses and metrics."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MultilabelAccuracy, MultilabelF1Score

from transferlab.contracts.checks import check_positive
from transferlab.contracts.errors import TransferlabError
from transferlab.contracts.tasks import TASK_KINDS, missing

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


class TaskLoss(nn.Module):
    """One task's loss over its labelled samples: cross-entropy, BCE with logits, or MSE by ``spec["kind"]``.

    Samples with a missing label (``-1`` or ``NaN``) are dropped; a batch without any labelled sample gives a zero
    loss that keeps the graph (never NaN).
    """

    def __init__(self, spec: Mapping):
        super().__init__()
        self.kind, self.label_smoothing = spec["kind"], float(spec["label_smoothing"])
        weights = spec.get("class_weights")
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights, dtype=torch.float32),
                             persistent=False)

    def labelled(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output, target)`` of the labelled samples, the target shaped for the loss and metrics."""
        keep = ~missing(target)
        output, target = output[keep], target[keep]
        if self.kind != "multiclass":
            target = target.reshape(output.shape).to(output.dtype)
        return output, target

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(output) == 0:
            return output.sum() * 0.0
        if self.kind == "multiclass":
            return F.cross_entropy(output, target, weight=self.class_weights, label_smoothing=self.label_smoothing)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(output, target)
        return F.mse_loss(output, target)

    def for_metrics(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labelled predictions in the form the task's torchmetrics expect (probabilities for multi-label)."""
        if self.kind == "multilabel":
            return output.detach().sigmoid(), target.long()
        return output.detach(), target


def task_metrics(spec: Mapping, prefix: str) -> MetricCollection:
    """torchmetrics for one task: ``acc`` and macro ``f1`` for class tasks, ``mae`` for regression."""
    n = spec["num_classes"]
    if spec["kind"] == "multiclass":
        metrics = {"acc": MulticlassAccuracy(n, average="micro"), "f1": MulticlassF1Score(n, average="macro")}
    elif spec["kind"] == "multilabel":
        metrics = {"acc": MultilabelAccuracy(n, average="micro"), "f1": MultilabelF1Score(n, average="macro")}
    else:
        metrics = {"mae": MeanAbsoluteError()}
    return MetricCollection(metrics, prefix=prefix)
