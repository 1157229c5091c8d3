"""The fonts -> handwritten digits pair: rendering, splits, evaluation views and one DANN epoch end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError
from transferlab.data.digits import digit_splits, load_digit_images
from transferlab.data.font_digits import FontDigitsDataModule, bundled_fonts, render_font_digits, resolve_fonts
from transferlab.experiment import train


def pair(split_seed: int = 0, **kwargs) -> FontDigitsDataModule:
    data = FontDigitsDataModule(image_size=16, batch_size=8, data_config=DataConfig(), split_seed=split_seed,
                                **kwargs)
    data.setup("fit")
    return data


@pytest.fixture(scope="module")
def data():
    return pair()


def test_deterministic_for_a_split_seed_and_different_for_another(data):
    again, other = pair(0), pair(1)
    assert torch.equal(data.train_set.images, again.train_set.images)
    assert torch.equal(data.test_set.images, again.test_set.images)
    assert not torch.equal(data.train_set.images, other.train_set.images)
    rendered_0, _ = render_font_digits(50, 16, 0, bundled_fonts())
    rendered_1, _ = render_font_digits(50, 16, 1, bundled_fonts())
    assert (rendered_0.float() - rendered_1.float()).abs().mean() > 10  # other images, not just another split


def test_shapes_dtypes_and_unequal_domains(data):
    sources = (data.train_set, data.val_set, data.test_set)
    targets = (data.target_train, data.target_val, data.target_test)
    for dataset in (*sources, *targets):
        assert dataset.images.dtype == torch.uint8 and dataset.images.shape[1:] == (3, 16, 16)
        assert dataset.labels.dtype == torch.long
    assert sum(map(len, sources)) == 2400 and sum(map(len, targets)) == 1797
    assert len(data.train_set) != len(data.target_train) and data.target_labelled
    assert data.class_names == [str(d) for d in range(10)] and data.num_classes == 10
    image, label = data.train_set[0]
    assert image.dtype == torch.float32 and image.shape == (3, 16, 16) and 0 <= int(label) < 10


def test_labels_are_balanced(data):
    _, labels = render_font_digits(300, 16, 3, bundled_fonts())
    assert np.bincount(labels, minlength=10).tolist() == [30] * 10
    counts = np.bincount(data.train_set.labels.numpy(), minlength=10)
    assert counts.min() >= counts.max() - 1


def test_train_eval_views_hold_the_training_images_without_augmentation(data):
    for train_set, view in [(data.train_set, data.source_train_eval), (data.target_train, data.target_train_eval)]:
        assert torch.equal(view.images, train_set.images) and torch.equal(view.labels, train_set.labels)
        assert torch.equal(view[3][0], view[3][0])
        torch.manual_seed(0)
        first = train_set[3][0]
        torch.manual_seed(1)
        assert not torch.equal(first, train_set[3][0])  # the training view is augmented


def test_target_is_sklearn_digits_with_their_labels(data):
    labels = load_digits().target
    images, _ = load_digit_images(16)
    for dataset, index in zip((data.target_train, data.target_val, data.target_test),
                              digit_splits(labels, 0.1, 0.2, 0)):
        assert dataset.labels.tolist() == labels[index].tolist()
        assert torch.equal(dataset.images, images[index])


def eight_by_eight(images: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d(images[:, :1].float(), 8).flatten(1).numpy()


def test_rendered_digits_are_recognisable_digits():
    fonts = bundled_fonts()
    train_images, train_labels = render_font_digits(1000, 32, 10, fonts)
    test_images, test_labels = render_font_digits(400, 32, 11, fonts)
    classifier = LogisticRegression(max_iter=2000).fit(eight_by_eight(train_images) / 255, train_labels)
    assert classifier.score(eight_by_eight(test_images) / 255, test_labels) > 0.6


def test_fonts_are_text_fonts_and_unknown_names_are_one_line_errors():
    stems = {path.stem for path in bundled_fonts()}
    assert {"DejaVuSans", "DejaVuSerif-Bold", "cmr10", "STIXGeneral"} <= stems
    assert not stems & {"cmsy10", "cmex10", "DejaVuSansDisplay", "LastResortHE-Regular", "STIXSizOneSymReg"}
    assert [path.stem for path in resolve_fonts(["cmr10", "DejaVuSans"])] == ["cmr10", "DejaVuSans"]
    with pytest.raises(TransferlabError, match=r"data.fonts=\['Comic'\]: unknown \['Comic'\]; .*DejaVuSans") as err:
        FontDigitsDataModule(fonts=["Comic"])
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(TransferlabError, match="data.source_size=20 is too small"):
        FontDigitsDataModule(source_size=20)


@pytest.fixture
def one_thread():
    """One intra-op thread: with the 2 cores shared, two spinning OpenMP threads made this epoch ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_one_dann_epoch_end_to_end(make_cfg, one_thread):
    cfg = make_cfg("strategy=dann", "data=fonts_to_digits", "data.image_size=16", "data.batch_size=8",
                   "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
                   "trainer.limit_test_batches=2", "trainer.max_epochs=1", "callbacks.domain_report.method=pca")
    train(cfg)
    payload = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert payload["status"] == "completed", payload.get("error")
    metrics = payload["metrics"]
    assert all(0 <= metrics[key] <= 1 for key in ("test/target_acc", "test/source_acc", "val/target_acc_oracle"))
    assert np.isfinite(metrics["val/neg_dev_risk"])  # the DEV validator read source/target_train_eval
