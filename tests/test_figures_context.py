"""What the figures say: split, domain, counts and accuracy; errors first in the grid; class legend of embeddings."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from transferlab.atomic import save_figure
from transferlab.callbacks import EvaluationFigures
from transferlab.callbacks import figures as figures_module
from transferlab.callbacks.domain import DomainReport

NUM_CLASSES = 3
NAMES = ["cat", "dog", "bird"]
TITLE = re.compile(r"^(\w+) \((\d\.\d\d)\) / (\w+)$")


def _loader(targets: list[int], seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(len(targets), 3, 8, 8, generator=g), torch.tensor(targets)),
                      batch_size=8)


class _Data(L.LightningDataModule):
    """Test loaders given as lists of targets; ``has_target_domain`` like ``DomainDataModule``."""

    def __init__(self, *targets: list[int], two_domains: bool = False):
        super().__init__()
        self.class_names, self.targets = NAMES, targets
        if two_domains:
            self.has_target_domain = True

    def test_dataloader(self):
        return [_loader(t, seed) for seed, t in enumerate(self.targets)]


class _AlwaysCat(L.LightningModule):
    """Predicts class 0 with a fixed confidence; like ``DomainAdaptation``, returns outputs of the last loader only."""

    def __init__(self):
        super().__init__()
        self.num_classes = NUM_CLASSES
        self.bias = nn.Parameter(torch.tensor([2.0, 0.0, 0.0]))

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        images, target = batch
        logits = self.bias.expand(len(images), -1) + 0.0 * images.mean()
        if dataloader_idx == len(self.trainer.test_dataloaders) - 1:
            return {"loss": logits.sum(), "logits": logits, "target": target}
        return None


def _test(tmp_path: Path, monkeypatch, data: _Data, **kwargs) -> tuple[EvaluationFigures, dict]:
    """Run ``trainer.test`` and return the callback and its figures by file name (also written as PNGs)."""
    drawn = {}

    def spy(figure, path, **options):
        drawn[Path(path).stem] = figure
        save_figure(figure, path, **options)

    monkeypatch.setattr(figures_module, "save_figure", spy)
    callback = EvaluationFigures(dirpath=tmp_path, **kwargs)
    trainer = L.Trainer(logger=False, callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", default_root_dir=tmp_path)
    trainer.test(_AlwaysCat(), datamodule=data)
    for name in drawn:
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 100
    return callback, drawn


def _grid_titles(figure) -> list[tuple[str, tuple]]:
    return [(ax.get_title(), to_rgba(ax.title.get_color())) for ax in figure.axes if ax.get_title()]


def test_confusion_title_names_split_counts_accuracy_and_cells_show_share_and_count(tmp_path, monkeypatch):
    targets = [0] * 8 + [1] * 3 + [2] * 1  # always "cat": 8 of 12 right
    _, drawn = _test(tmp_path, monkeypatch, _Data(targets))
    ax = drawn["confusion_matrix"].axes[0]
    title = ax.get_title()
    assert title.startswith("test: confusion matrix") and "domain" not in title
    assert "N=12 images, accuracy 0.667" in title
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == NUM_CLASSES**2
    assert cells[0] == "1.00\n(8)" and cells[3] == "1.00\n(3)" and cells[1] == "0.00\n(0)"


def test_two_domain_data_titles_name_the_target_domain_of_the_drawn_loader(tmp_path, monkeypatch):
    source, target = [0] * 20, [0] * 5 + [1] * 5  # the source loader's outputs are not drawn (as in DA)
    _, drawn = _test(tmp_path, monkeypatch, _Data(source, target, two_domains=True), normalize_confusion=False)
    ax = drawn["confusion_matrix"].axes[0]
    assert ax.get_title().startswith("test (target domain): confusion matrix")
    assert "N=10 images, accuracy 0.500" in ax.get_title() and "counts" in ax.get_title()
    assert [t.get_text() for t in ax.texts][:4] == ["5", "0", "0", "5"]
    assert drawn["predictions"]._suptitle.get_text().startswith("test (target domain): N=10 images, accuracy 0.500\n"
                                                               "5 of 10 shown are errors (shown first)")

    _, drawn = _test(tmp_path / "source", monkeypatch, _Data(source, two_domains=True))  # unlabelled target
    assert drawn["confusion_matrix"].axes[0].get_title().startswith("test (source domain): confusion matrix")


def test_prediction_grid_shows_errors_first_even_when_they_come_late(tmp_path, monkeypatch):
    targets = [0] * 24 + [1, 2, 0, 1, 2, 0]  # the first three batches hold no error
    callback, drawn = _test(tmp_path, monkeypatch, _Data(targets), max_images=8)
    titles = _grid_titles(drawn["predictions"])
    assert len(titles) == 8
    red, green = to_rgba("red"), to_rgba("green")
    assert [colour for _, colour in titles] == [red] * 4 + [green] * 4
    for text, colour in titles:
        pred, _, true = TITLE.match(text).groups()
        assert pred == "cat" and (true != pred) == (colour == red)
    assert [true for _, _, true, _ in callback.shown] == [1, 2, 1, 2, 0, 0, 0, 0]
    fig = drawn["predictions"]
    suptitle = fig._suptitle.get_text()
    assert suptitle == ("test: N=30 images, accuracy 0.867\n4 of 8 shown are errors (shown first); "
                        "title = predicted (confidence) / true")
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["wrong prediction", "right prediction"]
    assert [to_rgba(h.get_facecolor()) for h in legend.legend_handles] == [red, green]


@pytest.mark.parametrize("class_names, expected", [(["zero", "one", "two"], ["zero", "one", "two"]),
                                                   (None, ["0", "1", "2"])])
def test_embedding_legend_names_classes_and_markers_outside_the_points(tmp_path, class_names, expected):
    g = torch.Generator().manual_seed(0)
    source = {"features": torch.randn(60, 8, generator=g), "labels": torch.arange(60) % 3}
    target = {"features": torch.randn(40, 8, generator=g) + 2, "labels": torch.arange(40) % 3}
    fig = DomainReport(method="pca").embedding_figure(source, target, class_names=class_names)
    save_figure(fig, tmp_path / "embedding.png", dpi=100, bbox_inches="tight")
    by_domain, by_class = fig.axes
    labels = [t.get_text() for t in by_class.get_legend().get_texts()]
    assert labels == [*expected, "source (o)", "target (x)"]
    colours = [to_rgba(h.get_color()) for h in by_class.get_legend().legend_handles[:3]]
    assert len(set(colours)) == 3
    points = {tuple(np.round(c, 3)) for coll in by_class.collections for c in coll.get_facecolors()}
    assert {tuple(np.round(c, 3)) for c in colours} == {p[:3] + (1.0,) for p in points}  # same hues as the points
    assert "60 source, 40 target" in fig._suptitle.get_text()
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in (by_domain, by_class):  # each legend sits beside its panel, not over the points
        assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
