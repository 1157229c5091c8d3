"""Feature extraction: a frozen pretrained backbone (kept in eval mode) under a new linear or MLP head."""

from __future__ import annotations

from transferlab.strategies.base import TransferModule


class LinearProbe(TransferModule):
    """Train only the head; the backbone's weights and BatchNorm statistics never change.

    Example:
        Seed 001's CT classifier, a 2048->512->ReLU->Dropout(0.5)->2 MLP on frozen ResNet-50 features:
        ``python -m transferlab.run experiment=ct_feature_extractor data.root=/path/to/ct``
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.apply_freezing()

    def frozen_depth(self) -> int:
        return self.backbone.num_stages

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        return [g for g in super().parameter_groups(lr, weight_decay) if g["name"].startswith("head")]
