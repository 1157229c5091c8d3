"""Test-only callbacks that break a run on purpose, added with ``+callbacks.<name>._target_=chaos.<Class>``."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class SignalAtStep(L.Callback):
    """Send ``signal`` to this process after training step ``step`` of a fresh (not resumed) run."""

    def __init__(self, step: int, signal: str = "SIGKILL"):
        self.step, self.signum = step, getattr(signal_module, signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


signal_module = signal


class NanAtStep(L.Callback):
    """Fill the head's weights with NaN just before training step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.head.parameters():
                    p.fill_(float("nan"))
