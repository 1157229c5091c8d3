"""A rich progress bar whose per-batch work is done only when a redraw is due."""

from __future__ import annotations

from time import monotonic

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, updated at most ``refresh_rate`` times a second during training.

    Rich redraws the bar from a background thread ``refresh_rate`` times a second, but Lightning's bar updates its
    count and reads every progress-bar metric off the result collection (a ``.item()`` each) after every training
    batch: work no redraw shows at 2 redraws a second, about 0.3 ms a step on a CPU. This bar does it when a redraw is
    due, on an epoch's last batch (the last before ``max_steps`` too), and before the count could be seen to stop
    (the epoch's end, validation, an exception), so what is shown never lags by more than one redraw.

    Args:
        refresh_rate: redraws (and updates) a second; 0 disables the bar.
        **kwargs: the rest of ``RichProgressBar``'s arguments (``leave``, ``theme``, ``console_kwargs``).
    """

    def __init__(self, refresh_rate: int = 1, **kwargs) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._due = 0.0  # monotonic() of the next update
        self._pending: int | None = None  # batch_idx of a training batch not yet shown

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = monotonic()
        if now < self._due and batch_idx + 1 < self.total_train_batches:
            self._pending = batch_idx
            return
        self._due = now + 1.0 / max(self.refresh_rate, 1)
        self._pending = None
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _show_pending(self) -> None:
        """Show the last training batch not yet shown, if any."""
        if self._pending is not None:
            batch_idx, self._pending = self._pending, None
            super().on_train_batch_end(self.trainer, self.trainer.lightning_module, None, None, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._show_pending()
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._show_pending()
        super().on_validation_epoch_start(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._show_pending()
        super().on_exception(trainer, pl_module, exception)
