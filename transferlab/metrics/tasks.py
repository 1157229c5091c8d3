"""torchmetrics for one task of a multi-task model, by the task's kind."""

from __future__ import annotations

from collections.abc import Mapping

from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelF1Score,
)


def task_metrics(spec: Mapping, prefix: str) -> MetricCollection:
    """torchmetrics for one task: ``acc`` and macro ``f1`` for class tasks, ``mae`` for regression; a multi-label task
    of one label (a binary task) gets torchmetrics' binary metrics, its multi-label ones needing two labels or more."""
    n = spec["num_classes"]
    if spec["kind"] == "multiclass":
        metrics = {"acc": MulticlassAccuracy(n, average="micro"), "f1": MulticlassF1Score(n, average="macro")}
    elif spec["kind"] == "multilabel" and n == 1:
        metrics = {"acc": BinaryAccuracy(), "f1": BinaryF1Score()}
    elif spec["kind"] == "multilabel":
        metrics = {"acc": MultilabelAccuracy(n, average="micro"), "f1": MultilabelF1Score(n, average="macro")}
    else:
        metrics = {"mae": MeanAbsoluteError()}
    return MetricCollection(metrics, prefix=prefix)
