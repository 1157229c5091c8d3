"""Minimum Class Confusion (Jin et al. 2020): domain adaptation without a discriminator."""

from __future__ import annotations

from collections.abc import Callable

import torch

from transferlab.backbones import Backbone
from transferlab.losses import MinimumClassConfusionLoss
from transferlab.strategies.domain_adaptation import DomainAdaptation


class MCC(DomainAdaptation):
    """Source cross-entropy + ``mcc_weight`` x the class confusion of the target batch's predictions
    (``MinimumClassConfusionLoss``), logged as ``mcc/loss``. With no adversarial game it also runs where DANN is
    unstable.

    Args:
        backbone, num_classes, optimizer, scheduler: see ``TransferModule``.
        mcc_weight: weight of the class-confusion loss (1.0 in the paper; 0 = source only).
        temperature: softmax temperature of the target predictions (2.5 in the paper).
        **kwargs: see ``DomainAdaptation`` (bottleneck, BN modes, validators) and ``Finetune``.

    Example:
        ``python -m transferlab.run strategy=mcc data=digits_blend``
    """

    def __init__(self, backbone: Backbone, num_classes: int, optimizer: Callable | None,
                 scheduler: Callable | None = None, mcc_weight: float = 1.0, temperature: float = 2.5, **kwargs):
        kwargs.setdefault("backbone_lr_mult", 0.1)
        super().__init__(backbone, num_classes, optimizer, scheduler, adaptation_weight=mcc_weight, **kwargs)
        self.class_confusion = MinimumClassConfusionLoss(temperature)

    def adaptation_loss(self, source_features: torch.Tensor, source_logits: torch.Tensor,
                        target_features: torch.Tensor) -> torch.Tensor:
        loss = self.class_confusion(self.classify(target_features))
        self.log("mcc/loss", loss, on_step=True, on_epoch=True)
        return loss
