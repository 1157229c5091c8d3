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


class SignalFromEnv(L.Callback):
    """Send a signal at the global step named by the environment variable ``env`` (``"SIGKILL@26"``), in any run.

    Unlike ``SignalAtStep`` this also fires in a resumed run, and the override that adds it stays the same from
    one run to the next (``resume=auto`` needs equal overrides), so one chain of runs can be stopped at a different
    step each time. With ``env`` unset it does nothing.
    """

    def __init__(self, env: str = "TRANSFERLAB_CHAOS"):
        name, _, step = os.environ.get(env, "").partition("@")
        self.signum, self.step = (getattr(signal_module, name), int(step)) if name else (None, None)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.signum is not None and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SignalInValidation(L.Callback):
    """Send ``signal`` after validation batch ``batch`` of epoch ``epoch`` (not the sanity check) of a fresh run."""

    def __init__(self, epoch: int, batch: int = 0, signal: str = "SIGTERM"):
        self.epoch, self.batch, self.signum = epoch, batch, getattr(signal_module, signal)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if (trainer.ckpt_path is None and not trainer.sanity_checking and trainer.current_epoch == self.epoch
                and batch_idx == self.batch):
            os.kill(os.getpid(), self.signum)


class SignalInSweepJob(SignalFromEnv):
    """``SignalFromEnv`` for one job of a multirun: ``TRANSFERLAB_CHAOS_JOB="SIGKILL@3@1"`` kills the whole sweep
    process at global step 3 of job number 1 (``hydra.job.num``), in a fresh run only."""

    def __init__(self, env: str = "TRANSFERLAB_CHAOS_JOB"):
        signal_step, _, job = os.environ.get(env, "").rpartition("@")
        os.environ["_TRANSFERLAB_CHAOS_SIGNAL"] = signal_step
        super().__init__("_TRANSFERLAB_CHAOS_SIGNAL")
        self.job = int(job) if job else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        from hydra.core.hydra_config import HydraConfig

        if self.job is not None and trainer.ckpt_path is None and self.job == HydraConfig.get().job.num:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
