"""Save ``last.ckpt`` and stop when the job is told to go (SIGTERM, or SIGUSR1: SLURM's pre-emption warning)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_CODE = 143  # 128 + SIGTERM, what schedulers expect from a job that stopped on request


class Preemption(L.Callback):
    """Write a resumable checkpoint at the end of the current step when a stop signal arrives, then stop.

    Lightning already turns SIGTERM into ``trainer.received_sigterm`` and raises ``SIGTERMException`` after the
    current training or validation step; this callback does the same for SIGUSR1 and saves ``path`` whenever that
    exception stops fitting: in a training step, in validation or the sanity check (the validation in progress is
    lost and runs again on resume), or between epochs. ``transferlab.run`` turns the stop into exit code 143.

    Args:
        path: the checkpoint to write, normally ``<run dir>/checkpoints/last.ckpt`` (what ``resume=auto`` finds).
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.signalled: int | None = None
        self._previous = None

    def _note(self, signum, frame) -> None:
        self.signalled = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signalled = None
        self._previous = signal.signal(signal.SIGUSR1, self._note)  # after Lightning's own handlers

    def _stop_if_signalled(self) -> None:
        if self.signalled is not None:
            raise SIGTERMException  # what Lightning raises after the step on SIGTERM

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._stop_if_signalled()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx=0) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._stop_if_signalled()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        print(f"transferlab: stopped by a signal at global step {trainer.global_step}; saved {self.path}",
              file=sys.stderr)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None
