"""Feature extraction: a frozen pretrained backbone (kept in eval mode) under a new linear or MLP head."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from transferlab.backbones import Backbone
from transferlab.heads import build_head
from transferlab.heads.grid import HeadGrid, grid_settings
from transferlab.optim import make_groups
from transferlab.strategies.base import TransferModule


class LinearProbe(TransferModule):
    """Train only the head; the backbone's weights and BatchNorm statistics never change.

    Inputs may be images or, when the data caches backbone features (``data.cache_features=true``: the backbone
    runs once over the un-augmented train and validation images), batches of features ``(N, D)``, which go
    straight to the head. Testing always runs the whole network on the test images.

    With ``head_grid`` (lists of ``lr`` and/or ``weight_decay``) one head per combination trains in the same pass,
    each in its own parameter group; every validation picks the head with the best accuracy, whose numbers are
    logged as ``val/acc`` (each head's as ``probe/head<k>/val_acc``) and which the checkpoint and test use.

    Args:
        backbone, num_classes, optimizer, scheduler: see ``TransferModule``.
        head_hidden: widths of MLP hidden layers; empty for a linear head.
        head_dropout: dropout in the head.
        head_grid: e.g. ``{lr: [1e-3, 1e-2], weight_decay: [0, 1e-4]}``; ``None`` for one head.
        **kwargs: see ``TransferModule``.

    Example:
        Seed 001's CT classifier, a 2048->512->ReLU->Dropout(0.5)->2 MLP on frozen ResNet-50 features:
        ``python -m transferlab.run experiment=ct_feature_extractor data.root=/path/to/ct``
        A grid of 45 heads on cached features in one run:
        ``python -m transferlab.run strategy=linear_probe data.cache_features=true
        'strategy.head_grid={lr:[1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3,1.0],weight_decay:[0,1e-5,1e-4,1e-3,1e-2]}'``
    """

    frozen_backbone = True  # the data may serve cached backbone features instead of images

    def __init__(self, backbone: Backbone, num_classes: int, optimizer: Callable | None,
                 scheduler: Callable | None = None, head_hidden: Sequence[int] = (), head_dropout: float = 0.0,
                 head_grid: Mapping[str, Sequence[float]] | None = None, **kwargs):
        hidden = list(head_hidden or ())
        if head_grid:
            head = HeadGrid(grid_settings(head_grid), backbone.num_features, num_classes, hidden, head_dropout)
        else:
            head = build_head(backbone.num_features, num_classes, hidden, head_dropout)
        super().__init__(backbone, head, num_classes, optimizer, scheduler, **kwargs)
        if head_grid:
            self.grid_val_acc = nn.ModuleList(MulticlassAccuracy(num_classes, average="micro") for _ in head.heads)
        self.apply_freezing()

    def frozen_depth(self) -> int:
        return self.backbone.num_stages

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features, or the input itself when it already is a batch of cached features ``(N, D)``."""
        return images if images.ndim == 2 else super().features(images)

    @property
    def grid(self) -> HeadGrid | None:
        return self.head if isinstance(self.head, HeadGrid) else None

    # --- a grid of heads ----------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if self.grid is None:
            return super().training_step(batch, batch_idx)
        inputs, target = batch
        logits = self.grid.all_logits(self.features(inputs))
        losses = torch.stack([self.classification_loss(head_logits, target) for head_logits in logits])
        loss = losses.sum()  # heads share no parameters: each one gets exactly its own gradient
        self.check_finite(loss)
        self.train_acc.update(logits[int(self.grid.selected)], target)
        self.log("train/loss", losses[int(self.grid.selected)], on_step=True, on_epoch=True, prog_bar=True)
        self.log_epoch_metric("train/acc", self.train_acc, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        if self.grid is None:
            return super().validation_step(batch, batch_idx)
        inputs, target = batch
        logits = self.grid.all_logits(self.features(inputs))
        for metric, head_logits in zip(self.grid_val_acc, logits):
            metric.update(head_logits, target)
        self.log("val/loss", self.classification_loss(logits[int(self.grid.selected)], target), on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        if self.grid is not None:
            accs = torch.stack([metric.compute() for metric in self.grid_val_acc])
            for k, (acc, metric) in enumerate(zip(accs, self.grid_val_acc)):
                self.log(f"probe/head{k}/val_acc", acc)
                metric.reset()
            self.grid.selected.fill_(int(accs.argmax()))
            self.log("val/acc", accs.max(), prog_bar=True)
            self.log("probe/selected_head", self.grid.selected.float())
            self.val_acc_best(accs.max())
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
            return
        super().on_validation_epoch_end()

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        if self.grid is None:
            return [g for g in super().parameter_groups(lr, weight_decay) if g["name"].startswith("head")]
        groups = []
        for k, (head, setting) in enumerate(zip(self.grid.heads, self.grid.settings)):
            groups += make_groups(f"head{k}", head.named_parameters(), setting.get("lr", lr),
                                  setting.get("weight_decay", weight_decay))
        return groups
