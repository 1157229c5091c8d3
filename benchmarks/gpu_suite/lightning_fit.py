"""transferlab's own path: modules built as the command line builds them, trained by ``Trainer.fit``, timed."""

from __future__ import annotations

import copy

import lightning as L
import torch
from common import now
from lightning.pytorch.utilities.compile import to_uncompiled

from transferlab.data.base import TensorImageDataset, TransferDataModule
from transferlab.experiment import build, load_config

from .budget import Part


class WindowTimer(L.Callback):
    """Wall time of ``steps`` training steps after ``warmup``, synchronised only at the window's two ends
    (``common.StepTimer`` synchronises after every step, which would hold back the Lightning side)."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.count, self.start, self.end = warmup, steps, 0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.start is None and trainer.global_step == self.warmup:
            self.start = now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None and self.end is None:
            self.count += 1
            if self.count == self.steps:
                self.end = now(pl_module.device)

    @property
    def seconds_per_step(self) -> float:
        if self.end is None:
            raise RuntimeError(f"the timer saw {self.count} of {self.steps} timed steps")
        return (self.end - self.start) / self.steps


class SyntheticImages(TransferDataModule):
    """In-memory uint8 images (on the GPU or on the CPU) as one split, through transferlab's loaders."""

    def __init__(self, images, labels, transform, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels, self.transform = images, labels, transform
        self.class_names = [str(i) for i in range(10)]

    def make_splits(self, stage=None):
        dataset = TensorImageDataset(self.images, self.labels, self.transform)
        self.train_set = self.val_set = self.test_set = dataset


def build_module(part: Part, model: str, size: int, channels_last: bool, strategy: str = "finetune",
                 extra: tuple[str, ...] = ()):
    """transferlab's ``build`` of a config composed as the command line would: random init, nothing downloaded.

    Returns:
        ``(backbone, datamodule, module)``.
    """
    cfg = load_config([f"model={model}", "model.weights=none", f"strategy={strategy}", "scheduler=none",
                       "optimizer=adamw", "logger=none", "callbacks=none", f"data.image_size={size}",
                       f"channels_last={str(channels_last).lower()}", "seed=0", *extra],
                      output_dir=part.scratch(strategy))
    backbone, datamodule, module, _ = build(cfg)
    return backbone, datamodule, module


_PRISTINE: dict = {}  # (model, size, channels_last) -> the module built first, copied for every use


def fresh_module(part: Part, model: str, size: int, channels_last: bool, compiled: bool = False):
    """A new copy of a ``strategy=finetune`` module built once (the same initial weights every time), compiled as
    ``build`` does it with ``compile=true`` (``torch.compile(module)``).

    Returns:
        ``(data_config, module)``: the backbone's data config and the (compiled) module.
    """
    key = (model, size, channels_last)
    if key not in _PRISTINE:
        _PRISTINE[key] = build_module(part, model, size, channels_last)[2]
    module = copy.deepcopy(_PRISTINE[key])
    return module.backbone.data_config, torch.compile(module) if compiled else module


def lightning_seconds_per_step(module, datamodule, device: torch.device, precision: str, warmup: int,
                               steps: int) -> float:
    """``Trainer.fit`` of ``module`` for ``warmup + steps`` steps; seconds per timed step. A compiled module is
    un-patched afterwards, so it can be fitted again."""
    timer = WindowTimer(warmup, steps)
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision,
                        max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], benchmark=device.type == "cuda",
                        deterministic=False)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        if isinstance(module, torch._dynamo.eval_frame.OptimizedModule):
            to_uncompiled(module)
    return timer.seconds_per_step
