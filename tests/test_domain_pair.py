"""Two-domain data: the embedded digits->photo-blend pair and folder pairs (labelled, unlabelled, mismatched)."""

from __future__ import annotations

import pytest
import torch
from fakes import make_image_tree
from lightning.pytorch.utilities import CombinedLoader

from transferlab.backbones.backbone import DataConfig
from transferlab.data.digits_blend import DigitsBlendDataModule
from transferlab.data.domain_pair import DomainPairDataModule
from transferlab.errors import TransferlabError


def test_digits_blend_is_a_deterministic_mnistm_style_pair():
    first, second = (DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig()) for _ in range(2))
    first.setup("fit")
    second.setup("fit")
    assert torch.equal(first.target_train.images, second.target_train.images)
    assert first.target_train.images.shape == first.train_set.images.shape == (len(first.train_set), 3, 16, 16)
    assert torch.equal(first.target_test.labels, first.test_set.labels)
    source, target = first.train_set.images.float(), first.target_train.images.float()
    assert (target - source).abs().mean() > 40  # photo backgrounds, not the black digit background
    channels = target.mean(dim=(2, 3))
    assert (channels.max(1).values - channels.min(1).values).mean() > 5  # colour, unlike the grey source
    assert first.target_labelled and first.num_classes == 10


def test_training_batches_pair_both_domains_and_validation_has_both():
    data = DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig())
    data.setup("fit")
    loader = data.train_dataloader()
    assert isinstance(loader, CombinedLoader) and loader._mode == "max_size_cycle"
    batch, _, _ = next(iter(loader))
    (xs, ys), (xt, _) = batch["source"], batch["target"]
    assert xs.shape == xt.shape == (8, 3, 16, 16) and ys.dtype == torch.long
    source_val, target_val = data.val_dataloader()
    assert len(source_val.dataset) == len(target_val.dataset) == len(data.val_set)


@pytest.fixture
def trees(tmp_path):
    return {name: make_image_tree(tmp_path / name, classes=classes, per_class=per_class, size=16, modes=("RGB",))
            for name, classes, per_class in [("source", ("a", "b"), 10), ("target", ("a", "b"), 20),
                                             ("other", ("a", "c"), 10)]}


def pair(source, target, **kwargs):
    return DomainPairDataModule(str(source), str(target), image_size=16, batch_size=4, **kwargs)


def test_folder_pair_of_unequal_sizes_cycles_the_smaller_domain(trees):
    data = pair(trees["source"], trees["target"])
    data.setup("fit")
    assert data.class_names == ["a", "b"] and data.target_labelled
    assert len(data.target_train) > len(data.train_set)
    loader = data.train_dataloader()
    batches = list(iter(loader))
    assert len(batches) == len(data.target_train) // 4 + (len(data.target_train) % 4 > 1)


def test_unlabelled_flat_target_folder(trees, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted((trees["target"]).rglob("*.*")):
        path.rename(flat / f"{path.parent.name}_{path.name}")
    data = pair(trees["source"], flat)
    data.setup("fit")
    assert not data.target_labelled and len(data.target_val) + len(data.target_train) == 40
    assert data.target_train[0][1] == -1 and data.test_dataloader().dataset is data.test_set


def test_mismatched_classes_and_empty_target_are_clear_errors(trees, tmp_path):
    with pytest.raises(TransferlabError, match=r"source and target class names differ: .*\['b'\].*\['c'\]"):
        pair(trees["source"], trees["other"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferlabError, match="data.target=.* has no images"):
        pair(trees["source"], tmp_path / "empty")
    with pytest.raises(TransferlabError, match="data.target=/no/where does not exist"):
        pair(trees["source"], "/no/where")
