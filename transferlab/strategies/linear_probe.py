"""Feature extraction: a frozen pretrained backbone (kept in eval mode) under a new linear or MLP head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from transferlab.data.feature_cache import cached_features, unaugmented
from transferlab.heads.grid import HeadGrid, grid_settings
from transferlab.optim import make_groups
from transferlab.strategies.base import TransferModule


class LinearProbe(TransferModule):
    """Train only the head; the backbone's weights and BatchNorm statistics never change.

    With ``cache_features`` the backbone runs once over the un-augmented train and validation images and the head
    trains on the stored features (kept in memory, and in ``cache_dir`` when given, keyed by a hash of the backbone
    weights, the images and the transform). Testing always runs the whole network on the test images.

    With ``head_grid`` (lists of ``lr`` and/or ``weight_decay``) one head per combination trains in the same pass,
    each in its own parameter group; every validation picks the head with the best accuracy, whose numbers are
    logged as ``val/acc`` (each head's as ``probe/head<k>/val_acc``) and which the checkpoint and test use.

    Args:
        cache_features: train the head(s) on cached backbone features (no augmentation).
        cache_dir: folder for cached features; ``None`` keeps them in memory only.
        head_grid: e.g. ``{lr: [1e-3, 1e-2], weight_decay: [0, 1e-4]}``; ``None`` for one head.
        **kwargs: see ``TransferModule``.

    Example:
        Seed 001's CT classifier, a 2048->512->ReLU->Dropout(0.5)->2 MLP on frozen ResNet-50 features:
        ``python -m transferlab.run experiment=ct_feature_extractor data.root=/path/to/ct``
        A grid of 45 heads on cached features in one run:
        ``python -m transferlab.run strategy=linear_probe strategy.cache_features=true
        'strategy.head_grid={lr:[1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3,1.0],weight_decay:[0,1e-5,1e-4,1e-3,1e-2]}'``
    """

    def __init__(self, *args, cache_features: bool = False, cache_dir: str | None = None,
                 head_grid: Mapping[str, Sequence[float]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if head_grid:
            self.head = HeadGrid(grid_settings(head_grid), self.backbone.num_features, self.num_classes,
                                 list(self.hparams.head_hidden or ()), self.hparams.head_dropout)
            self.grid_val_acc = nn.ModuleList(MulticlassAccuracy(self.num_classes, average="micro")
                                              for _ in self.head.heads)
        self.apply_freezing()

    def frozen_depth(self) -> int:
        return self.backbone.num_stages

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features, or the input itself when it already is a batch of cached features ``(N, D)``."""
        return images if images.ndim == 2 else super().features(images)

    @property
    def grid(self) -> HeadGrid | None:
        return self.head if isinstance(self.head, HeadGrid) else None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or not self.hparams.cache_features or datamodule is None:
            return
        self.backbone.to(self.trainer.strategy.root_device)
        splits = {"train": unaugmented(datamodule.train_set, datamodule.val_set), "val": datamodule.val_set}
        cached = cached_features(self.backbone, splits, datamodule.image_size, self.hparams.cache_dir,
                                 batch_size=max(datamodule.batch_size, 256), device=self.trainer.strategy.root_device)
        datamodule.train_set, datamodule.val_set = cached["train"], cached["val"]

    # --- a grid of heads ----------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if self.grid is None:
            return super().training_step(batch, batch_idx)
        inputs, target = batch
        logits = self.grid.all_logits(self.features(inputs))
        losses = torch.stack([self.classification_loss(head_logits, target) for head_logits in logits])
        loss = losses.sum()  # heads share no parameters: each one gets exactly its own gradient
        self.check_finite(loss)
        self.train_acc(logits[int(self.grid.selected)], target)
        self.log("train/loss", losses[int(self.grid.selected)], on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
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
            self.val_acc = MulticlassAccuracy(self.num_classes, average="micro").to(self.device)
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
