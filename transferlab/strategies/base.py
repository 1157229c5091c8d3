"""The shared LightningModule: a backbone and a head composed by the strategy; loss, metrics, optimizer groups,
checkpoint extras."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, Metric
from torchmetrics.classification import MulticlassAccuracy

from transferlab.backbones import Backbone
from transferlab.contracts.errors import TransferlabError
from transferlab.optim import make_groups, stage_lrs
from transferlab.rng import seed_torch


class TransferModule(L.LightningModule):
    """A backbone and the head a strategy built for it, trained with cross-entropy.

    The network is composed once, by the strategy: it builds its head (linear, MLP, bottleneck + classifier, a grid
    or one head per task) and passes it here with the backbone. Subclasses decide which stages train
    (``frozen_depth``) and may add losses; the loop, metrics and parameter groups live here once. Config values
    are checked once, at startup (``transferlab.contracts.checks``), not again here.

    Args:
        backbone: the feature extractor.
        head: the module on top of the backbone's features.
        num_classes: classes of the task, for the accuracy metrics; None when the head defines its own tasks.
        optimizer: partial optimizer (e.g. ``functools.partial(torch.optim.AdamW, lr=1e-3)``), called with groups.
        scheduler: partial of a ``transferlab.optim`` schedule builder, or None.
        label_smoothing: cross-entropy label smoothing.
        backbone_lr_mult: backbone lr = ``lr * backbone_lr_mult``.
        layer_decay: each stage below the top gets this factor once more (1.0 = off).
    """

    def __init__(self, backbone: Backbone, head: nn.Module, num_classes: int | None, optimizer: Callable | None,
                 scheduler: Callable | None = None, label_smoothing: float = 0.0, backbone_lr_mult: float = 1.0,
                 layer_decay: float = 1.0):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "head", "optimizer", "scheduler"])
        self.backbone, self.head = backbone, head
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.num_classes = num_classes
        self.class_names: list[str] | None = None
        if num_classes is not None:
            self.train_acc, self.val_acc, self.test_acc = (MulticlassAccuracy(num_classes, average="micro")
                                                           for _ in range(3))
        self.val_acc_best = MaxMetric()

    # --- which stages train -------------------------------------------------------------------------------------
    def frozen_depth(self) -> int:
        """How many backbone stages are frozen now (stem first). Subclasses override."""
        return 0

    def apply_freezing(self) -> None:
        """Set ``requires_grad`` from ``frozen_depth()`` and keep frozen modules in eval mode."""
        self.backbone.freeze(self.frozen_depth(), key="strategy.freeze_depth")
        if self.training:  # modes follow the depth exactly: unfrozen stages train again
            self.backbone.train()
            self.backbone.frozen_to_eval()

    def train(self, mode: bool = True):
        """Lightning calls ``train()`` every epoch; frozen parts go straight back to eval (BN stats stay fixed)."""
        super().train(mode)
        if mode:
            self.backbone.frozen_to_eval()
        return self

    # --- forward and loss ---------------------------------------------------------------------------------------
    channels_last: bool = False  # set by transferlab.experiment.build when channels_last=true

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(N, num_features)`` of a batch of images."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def classification_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop at the first non-finite loss, naming the step."""
        if not math.isfinite(loss.item()):  # a Python float: no tensor op on every step
            raise TransferlabError(f"loss is {loss.item()} at global step {self.global_step} (epoch "
                                   f"{self.current_epoch}); lower optimizer.lr or check the data")

    def training_step(self, batch, batch_idx):
        images, target = batch
        logits = self(images)
        loss = self.classification_loss(logits, target)
        self.log_training(loss, logits, target)
        return loss

    def log_training(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Stop on a non-finite ``loss``; log it and the training accuracy of ``logits``."""
        self.check_finite(loss)
        self.train_acc.update(logits, target)  # epoch-level only: the batch's own accuracy is never shown
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log_epoch_metric("train/acc", self.train_acc, prog_bar=True)

    def log_epoch_metric(self, name: str, metric: Metric, **kwargs) -> None:
        """``self.log(name, metric, on_step=False, on_epoch=True, **kwargs)`` for a metric the step updated, but
        only while Lightning holds no entry of it that waits for the epoch's end.

        Lightning computes such a metric from its accumulated state when the epoch ends, then resets it; logging it
        again on every step changes nothing but costs Lightning's per-call work (a fraction of a millisecond on a
        CPU). So it is logged on the epoch's first step (and whenever Lightning's entry is missing or was reset).
        """
        if not self._awaits_epoch_end(name, metric):
            self.log(name, metric, on_step=False, on_epoch=True, **kwargs)

    def _awaits_epoch_end(self, name: str, metric: Metric) -> bool:
        """Whether Lightning's result collection holds ``metric`` under ``name`` for this hook, not yet reset."""
        results = getattr(self._trainer, "_results", None) if self._trainer is not None else None
        if not isinstance(results, dict) or self._current_fx_name is None:
            return False
        index = getattr(results, "dataloader_idx", None)
        entry = results.get(f"{self._current_fx_name}.{name}" + ("" if index is None else f".{index}"))
        return getattr(entry, "has_reset", True) is False and getattr(entry, "value", None) is metric

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # the sanity check must not count as a best
        best, self._resumed_val_acc_best = self._resumed_val_acc_best, None
        if best is not None and math.isfinite(best) and self.trainer.ckpt_path is not None:
            self.val_acc_best.update(best)  # a resumed run remembers the epochs before the interruption

    def on_fit_start(self) -> None:
        """Note the parameters DDP averages: those trainable when it wrapped the module (just before this hook)."""
        self._ddp_averaged = {id(p) for p in self.parameters() if p.requires_grad}

    def on_before_optimizer_step(self, optimizer) -> None:
        """Average across ranks the gradients DDP does not: those of stages unfrozen after it wrapped the module
        (``unfreeze_epochs``), which would otherwise train on each rank's own batches and drift apart."""
        if self.trainer.world_size <= 1:
            return
        grads = [p.grad for p in self.parameters()
                 if p.requires_grad and p.grad is not None and id(p) not in self._ddp_averaged]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch.distributed.all_reduce(flat)
            flat /= self.trainer.world_size
            for grad, chunk in zip(grads, flat.split([g.numel() for g in grads])):
                grad.copy_(chunk.view_as(grad))

    def validation_step(self, batch, batch_idx):
        images, target = batch
        logits = self(images)
        self.val_acc(logits, target)
        self.log("val/loss", self.classification_loss(logits, target), on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch, batch_idx):
        images, target = batch
        logits = self(images)
        loss = self.classification_loss(logits, target)
        self.test_acc(logits, target)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True)
        self.log("test/acc", self.test_acc, on_epoch=True)
        return {"loss": loss, "logits": logits.detach(), "target": target}

    def predict_step(self, batch, batch_idx):
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(images).softmax(dim=-1)

    # --- optimisation -------------------------------------------------------------------------------------------
    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Every parameter, frozen or not, in named groups: one lr per backbone stage, then the head.

        Frozen parameters get no gradient, so the optimizer skips them; creating all groups up front is what lets
        gradual unfreezing survive a resume (the optimizer state always has the same shape).
        """
        lrs = stage_lrs(lr, self.backbone.num_stages, self.hparams.backbone_lr_mult, self.hparams.layer_decay)
        named = dict(self.backbone.model.named_parameters())
        groups = []
        for i, stage in enumerate(self.backbone.stages):
            groups += make_groups(f"stage{i}", [(n, named[n]) for n in stage], lrs[i], weight_decay)
        owned = {id(p) for g in groups for p in g["params"]}
        rest = [(n, p) for n, p in self.named_parameters() if id(p) not in owned]
        return groups + make_groups("head", rest, lr, weight_decay)

    def configure_optimizers(self):
        defaults = getattr(self.optimizer_factory, "keywords", {})
        lr, weight_decay = float(defaults.get("lr", 1e-3)), float(defaults.get("weight_decay", 0.0))
        optimizer = self.optimizer_factory(self.parameter_groups(lr, weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        schedule = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches,
                                          max_epochs=self.trainer.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    # --- checkpoints --------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        self.apply_freezing()
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            self.class_names = self.data_class_names(datamodule) or self.class_names

    def data_class_names(self, datamodule) -> list[str] | None:
        """The class names ``datamodule`` gives this module's head, after checking they fit it."""
        names = getattr(datamodule, "class_names", None)
        if names and len(names) != self.num_classes:
            raise TransferlabError(f"the model has {self.num_classes} classes but the data has {len(names)}")
        return list(names) if names else None

    _resumed_val_acc_best: float | None = None  # from on_load_checkpoint, applied in on_train_start

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Add class names, backbone and data config, and ``val_acc_best``'s value (its metric state is not in the
        state_dict, whose keys stay as they are so older checkpoints load strictly)."""
        checkpoint["transferlab"] = {"class_names": self.class_names, "backbone": self.backbone.name,
                                     "data_config": self.backbone.data_config.to_dict(),
                                     "val_acc_best": float(self.val_acc_best.max_value)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        own = self.state_dict()
        for key, tensor in checkpoint.get("state_dict", {}).items():
            if key in own and tuple(tensor.shape) != tuple(own[key].shape):
                raise TransferlabError(f"checkpoint tensor {key} has shape {tuple(tensor.shape)} but this model's "
                                       f"is {tuple(own[key].shape)} (the data has {self.num_classes} classes); "
                                       "resume with the data and head the checkpoint was trained with")
        extra = checkpoint.get("transferlab", {})
        names = extra.get("class_names")
        if names and self.class_names and list(names) != self.class_names:
            raise TransferlabError(f"checkpoint classes {names[:5]}... differ from the data's "
                                   f"{self.class_names[:5]}...")
        self.class_names = names or self.class_names
        self._resumed_val_acc_best = extra.get("val_acc_best")  # None in older checkpoints

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Reseed the global generator from (seed, step) alone, so model-side randomness such as dropout is the
        same in a resumed run as in an uninterrupted one (data augmentation is seeded per sample by the sampler)."""
        seed = os.environ.get("PL_GLOBAL_SEED")
        if seed is not None:
            seed_torch(int(seed) * 1_000_003 + self.global_step)
