"""EvaluationFigures with a real Trainer: PNGs, CSV counts, TensorBoard image summaries, no/other loggers."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from sklearn.metrics import confusion_matrix
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from transferlab.callbacks import EvaluationFigures

NUM_CLASSES, N_TEST = 3, 50


@dataclass
class _Config:
    mean: tuple[float, float, float] = (0.5, 0.4, 0.3)
    std: tuple[float, float, float] = (0.2, 0.25, 0.3)


def _data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, NUM_CLASSES, (n,), generator=g))


class _DataModule(L.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.class_names = ["cat", "dog", "a rather long class name"]
        self.data_config = _Config()

    def train_dataloader(self):
        return DataLoader(_data(32, 0), batch_size=8)

    def test_dataloader(self):
        return DataLoader(_data(N_TEST, 1), batch_size=8)  # 50 = 6 * 8 + 2: ragged last batch


class _Classifier(L.LightningModule):
    def __init__(self, expose_num_classes: bool = True):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, NUM_CLASSES))
        if expose_num_classes:
            self.num_classes = NUM_CLASSES
        self.seen_preds, self.seen_targets = [], []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.seen_preds += logits.argmax(-1).tolist()
        self.seen_targets += y.tolist()
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits.detach(), "target": y}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path: Path, logger, callback: EvaluationFigures) -> L.Trainer:
    return L.Trainer(max_epochs=1, logger=logger, callbacks=[callback], enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                     default_root_dir=tmp_path)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]])


def _check_png(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_figures_tensorboard_csv_and_pngs(tmp_path):
    model, dm = _Classifier(), _DataModule()
    callback = EvaluationFigures(dirpath=tmp_path / "fig" / "nested", max_images=10)
    trainer = _trainer(tmp_path, TensorBoardLogger(tmp_path / "tb"), callback)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)

    out = tmp_path / "fig" / "nested"
    _check_png(out / "confusion_matrix.png")
    _check_png(out / "predictions.png")
    names, matrix = _read_csv(out / "confusion_matrix.csv")
    assert names == dm.class_names
    assert matrix.sum() == N_TEST
    expected = confusion_matrix(model.seen_targets, model.seen_preds, labels=list(range(NUM_CLASSES)))
    np.testing.assert_array_equal(matrix, expected)

    seen = list(zip(model.seen_preds, model.seen_targets))  # the grid: first errors, then first right ones
    expected = ([s for s in seen if s[0] != s[1]][:10] + [s for s in seen if s[0] == s[1]][:10])[:10]
    assert [(pred, true) for _, pred, true, _ in callback.shown] == expected

    ea = EventAccumulator(str(trainer.logger.log_dir), size_guidance={"images": 0})
    ea.Reload()
    assert {"test/confusion_matrix", "test/predictions"} <= set(ea.Tags()["images"])
    event = ea.Images("test/confusion_matrix")[-1]
    assert event.step == trainer.global_step and event.width > 0 and event.height > 0


def test_figures_without_logger_default_dir_and_fallbacks(tmp_path):
    """No logger, no datamodule (index names, min-max images), num_classes taken from the logits."""
    model = _Classifier(expose_num_classes=False)
    callback = EvaluationFigures(max_images=4, normalize_confusion=False)
    trainer = _trainer(tmp_path, False, callback)
    trainer.test(model, dataloaders=DataLoader(_data(N_TEST, 2), batch_size=16))

    out = tmp_path / "figures"
    _check_png(out / "confusion_matrix.png")
    _check_png(out / "predictions.png")
    names, matrix = _read_csv(out / "confusion_matrix.csv")
    assert names == ["0", "1", "2"]
    np.testing.assert_array_equal(
        matrix, confusion_matrix(model.seen_targets, model.seen_preds, labels=list(range(NUM_CLASSES))))
    assert len(callback.shown) == 4
    for image, *_ in callback.shown:
        assert image.shape == (3, 16, 16) and image.min() == 0.0 and image.max() == 1.0


@pytest.mark.parametrize("max_images", [0, 64])
def test_figures_non_tensorboard_logger_and_image_counts(tmp_path, max_images):
    model, dm = _Classifier(), _DataModule()
    callback = EvaluationFigures(dirpath=tmp_path / "fig", max_images=max_images)
    trainer = _trainer(tmp_path, CSVLogger(tmp_path / "csv"), callback)
    trainer.test(model, datamodule=dm)
    assert (tmp_path / "fig" / "confusion_matrix.png").is_file()
    assert (tmp_path / "fig" / "predictions.png").is_file() == (max_images > 0)
    assert len(callback.shown) == min(max_images, N_TEST)
    assert _read_csv(tmp_path / "fig" / "confusion_matrix.csv")[1].sum() == N_TEST


def test_unnormalise_uses_data_config():
    config = _Config()
    pixels = torch.rand(2, 3, 4, 4)
    normalised = (pixels - torch.tensor(config.mean).view(1, 3, 1, 1)) / torch.tensor(config.std).view(1, 3, 1, 1)
    trainer = type("T", (), {"datamodule": type("D", (), {"data_config": config})()})()
    restored = torch.stack(EvaluationFigures._to_unit_range(normalised, trainer))
    torch.testing.assert_close(restored, pixels)


def test_rejects_negative_max_images():
    with pytest.raises(ValueError):
        EvaluationFigures(max_images=-1)
