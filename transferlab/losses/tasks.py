"""Per-task losses of multi-task training over the labelled samples of each task."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.contracts.tasks import missing


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
