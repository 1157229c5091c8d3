"""Minimum Class Confusion (Jin et al. 2020): a loss on unlabelled target predictions, no discriminator."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.losses.conditional import entropy


class MinimumClassConfusionLoss(nn.Module):
    """Off-diagonal mass of the target batch's class-confusion matrix.

    ``p = softmax(z / T)``; sample weights ``w ∝ 1 + exp(-H(p_i))`` (detached), scaled to sum to the batch size;
    ``C = pᵀ diag(w) p``; each column of ``C`` normalised to sum to 1; loss = sum of the off-diagonal entries / number
    of classes. It is 0 when every target sample is predicted with certainty into distinct classes' columns, and
    grows as the classifier confuses classes on the target.

    Args:
        temperature: ``T``; 2.5 in the paper.
    """

    def __init__(self, temperature: float = 2.5):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, target_logits: torch.Tensor) -> torch.Tensor:
        batch, classes = target_logits.shape
        probs = (target_logits.float() / self.temperature).softmax(dim=1)
        weights = 1.0 + torch.exp(-entropy(probs).detach())
        weights = (batch * weights / weights.sum()).unsqueeze(1)
        confusion = (probs * weights).t() @ probs
        confusion = confusion / confusion.sum(dim=0, keepdim=True)
        return (confusion.sum() - confusion.trace()) / classes
