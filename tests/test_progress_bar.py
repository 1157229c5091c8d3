"""The progress bar does its per-batch work only when a redraw is due, yet never shows a stale count or metric where
the count stops: at each epoch's end, when validation starts mid-epoch and when training fails."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from transferlab.callbacks import progress
from transferlab.callbacks.progress import ProgressBar


class Digits(L.LightningModule):
    """A linear classifier of scikit-learn's 8x8 digits that logs its loss to the bar on every step."""

    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.net = torch.nn.Linear(64, 10)
        self.last_loss = None
        self.fail_at = fail_at

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at:
            raise RuntimeError("transferlab test: a failing step")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, prog_bar=True)
        self.last_loss = loss.item()
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Watched(ProgressBar):
    """Counts metric reads, and records the shown count and loss wherever the count stops."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reads = 0
        self.shown: list[tuple[int, float, float]] = []  # (completed, total, shown loss)

    def get_metrics(self, trainer, pl_module):
        self.reads += 1
        return super().get_metrics(trainer, pl_module)

    def _record(self, pl_module):
        task = self.progress.tasks[self.train_progress_bar_id]
        shown = self._metric_component._metrics["train/loss"]
        self.shown.append((task.completed, task.total, shown, pl_module.last_loss))

    def on_train_epoch_end(self, trainer, pl_module):
        super().on_train_epoch_end(trainer, pl_module)
        self._record(pl_module)

    def on_validation_epoch_start(self, trainer, pl_module):
        super().on_validation_epoch_start(trainer, pl_module)
        if not trainer.sanity_checking:
            self._record(pl_module)

    def on_exception(self, trainer, pl_module, exception):
        super().on_exception(trainer, pl_module, exception)
        self._record(pl_module)


@pytest.fixture
def clock(monkeypatch):
    """A clock that advances 0.1 s each time the bar reads it."""
    now = [0.0]

    def monotonic():
        now[0] += 0.1
        return now[0]

    monkeypatch.setattr(progress, "monotonic", monotonic)  # the bar's clock only


def fit(bar: ProgressBar, fail_at: int | None = None, **trainer_kwargs) -> Digits:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16, dtype=torch.float32)
    train, val = TensorDataset(x[:400], torch.tensor(y[:400])), TensorDataset(x[400:432], torch.tensor(y[400:432]))
    model = Digits(fail_at)
    trainer = L.Trainer(accelerator="cpu", callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(model, DataLoader(train, batch_size=16), DataLoader(val, batch_size=16))  # 25 batches an epoch
    return model


def test_the_bar_reads_metrics_only_when_a_redraw_is_due_and_shows_each_epochs_end(clock):
    bar = Watched(refresh_rate=2)  # a redraw every 0.5 s: every 5th batch on this clock
    fit(bar, max_epochs=3)
    assert bar.reads < 3 * 25 / 3, bar.reads  # Lightning's own bar reads them after each of the 75 batches
    epochs = bar.shown[:3]
    assert [(completed, total) for completed, total, _, _ in epochs] == [(25, 25)] * 3
    for _, _, shown, last in epochs:
        assert shown == pytest.approx(last)  # the epoch's last step, not one shown earlier


def test_validation_mid_epoch_and_a_failure_show_the_last_finished_batch(clock):
    bar = Watched(refresh_rate=2)
    fit(bar, max_epochs=1, val_check_interval=7)  # validation after batches 7, 14 and 21
    assert [completed for completed, *_ in bar.shown] == [7, 14, 21, 25]
    assert all(shown == pytest.approx(last) for _, _, shown, last in bar.shown)
    bar = Watched(refresh_rate=2)
    with pytest.raises(RuntimeError, match="a failing step"):
        fit(bar, fail_at=12, max_epochs=1, limit_val_batches=0)
    completed, _, shown, last = bar.shown[-1]
    assert completed == 12 and shown == pytest.approx(last)
