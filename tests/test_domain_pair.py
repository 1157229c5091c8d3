"""Two-domain data: the embedded digits->photo-blend pair and folder pairs (labelled, unlabelled, mismatched)."""

from __future__ import annotations

import pytest
import torch
from fakes import make_image_tree
from lightning.pytorch.utilities import CombinedLoader

from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError
from transferlab.data.digits import load_digit_images
from transferlab.data.digits_blend import DigitsBlendDataModule
from transferlab.data.domain_pair import DomainPairDataModule


def test_digits_blend_is_a_deterministic_mnistm_style_pair():
    first, second = (DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig()) for _ in range(2))
    first.setup("fit")
    second.setup("fit")
    assert torch.equal(first.target_train.images, second.target_train.images)
    assert first.target_train.images.shape[1:] == first.train_set.images.shape[1:] == (3, 16, 16)
    assert abs(len(first.target_train) - len(first.train_set)) <= 10  # halves of the 1,797 digits
    source, target = first.train_set.images.float(), first.target_train.images.float()
    black = lambda images: (images < 10).float().mean()  # noqa: E731
    assert black(source) > 0.35 and black(target) < 0.15  # photo backgrounds, not the black digit background
    channels = target.mean(dim=(2, 3))
    assert (channels.max(1).values - channels.min(1).values).mean() > 5  # colour, unlike the grey source
    assert first.target_labelled and first.num_classes == 10


def test_digits_blend_domains_hold_disjoint_digit_images():
    data = DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig())
    data.setup("fit")
    assert not set(data.source_indices) & set(data.target_indices)
    assert len(data.source_indices) + len(data.target_indices) == 1797
    images, labels = load_digit_images(16)
    source = {images[i].numpy().tobytes() for i in data.source_indices}
    for split in (data.train_set, data.val_set, data.test_set):  # every source image is a source-half digit
        assert all(image.numpy().tobytes() in source for image in split.images)
    assert len(data.train_set) + len(data.val_set) + len(data.test_set) == len(data.source_indices)
    assert len(data.target_train) + len(data.target_val) + len(data.target_test) == len(data.target_indices)
    other = DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig(), split_seed=1)
    other.setup("fit")
    assert set(other.source_indices) != set(data.source_indices)  # the split seed draws another halving


def test_training_batches_pair_both_domains_and_validation_has_both():
    data = DigitsBlendDataModule(image_size=16, batch_size=8, data_config=DataConfig())
    data.setup("fit")
    loader = data.train_dataloader()
    assert isinstance(loader, CombinedLoader) and loader._mode == "max_size_cycle"
    batch, _, _ = next(iter(loader))
    (xs, ys), (xt, _) = batch["source"], batch["target"]
    assert xs.shape == xt.shape == (8, 3, 16, 16) and ys.dtype == torch.long
    source_val, target_val, source_train, target_train = data.val_dataloader()
    assert len(source_val.dataset) == len(data.val_set) and len(target_val.dataset) == len(data.target_val)
    assert len(source_train.dataset) == len(data.train_set) and len(target_train.dataset) == len(data.target_train)
    image, _ = source_train.dataset[0]
    assert torch.equal(image, source_train.dataset[0][0])  # the training images without augmentation


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
    assert data.target_train[0][1] == -1
    (source_test,) = data.test_dataloader()  # no target labels: only test/source_acc
    assert source_test.dataset is data.test_set


def test_mismatched_classes_and_empty_target_are_clear_errors(trees, tmp_path):
    with pytest.raises(TransferlabError, match=r"source and target class names differ: .*\['b'\].*\['c'\]"):
        pair(trees["source"], trees["other"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferlabError, match="data.target=.* has no images"):
        pair(trees["source"], tmp_path / "empty")
    with pytest.raises(TransferlabError, match="data.target=/no/where does not exist"):
        pair(trees["source"], "/no/where")
