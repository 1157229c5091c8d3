"""CIFAR10DataModule on a fake cifar-10-batches-py in the real pickle format, through torchvision's real MD5 check."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from fakes import CIFAR10_CLASSES, make_fake_cifar10, patched_cifar10_md5
from torchvision.datasets import CIFAR10

from transferlab.contracts.errors import TransferlabError
from transferlab.data.cifar10 import CIFAR10DataModule


@pytest.fixture
def fake_root(tmp_path):
    """A fake CIFAR-10 (5 x 20 training, 20 test images) that torchvision accepts as intact."""
    make_fake_cifar10(tmp_path)
    with patched_cifar10_md5(tmp_path):
        yield tmp_path


@pytest.fixture
def offline(monkeypatch):
    """No network: every name lookup and connection fails at once, as on an offline machine."""

    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable (blocked by test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def module(root, **kwargs) -> CIFAR10DataModule:
    return CIFAR10DataModule(root=root, **{"download": False, "image_size": 32, "batch_size": 8, **kwargs})


def test_fake_is_in_the_real_format(fake_root):
    train, test = CIFAR10(str(fake_root), train=True), CIFAR10(str(fake_root), train=False)
    assert train.data.shape == (100, 32, 32, 3) and train.data.dtype == np.uint8 and test.data.shape[0] == 20
    assert train.classes == CIFAR10_CLASSES and sorted(set(train.targets)) == list(range(10))


def test_loads_through_the_md5_check_with_seeded_stratified_split(fake_root):
    dm = module(fake_root, val_fraction=0.2)
    assert dm.num_classes == 10  # known before setup
    dm.setup()
    assert dm.class_names == CIFAR10_CLASSES
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 20)
    assert np.bincount(dm.val_set.labels.numpy()).tolist() == [2] * 10
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (3, 32, 32)
    again = module(fake_root, val_fraction=0.2)
    again.setup()
    assert torch.equal(again.val_set.images, dm.val_set.images)


@pytest.mark.parametrize("image_size", [32, 64])
def test_batch_shapes(fake_root, image_size):
    dm = module(fake_root, image_size=image_size)
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, image_size, image_size) and images.dtype == torch.float32
        assert labels.dtype == torch.long and torch.isfinite(images).all()


def test_native_size_eval_is_just_normalisation(fake_root):
    dm = module(fake_root, augment=False)
    dm.setup()
    image, _ = dm.test_set[0]
    mean, std = torch.tensor(dm.data_config.mean)[:, None, None], torch.tensor(dm.data_config.std)[:, None, None]
    assert torch.allclose(image * std + mean, dm.test_set.images[0].float() / 255, atol=1e-5)
    assert torch.equal(dm.train_set[0][0], dm.train_set[0][0])  # no augmentation


def test_resized_crop_option_and_few_shot(fake_root):
    dm = module(fake_root, image_size=48, crop_scale=(0.5, 1.0), samples_per_class=3)
    dm.setup()
    assert np.bincount(dm.train_set.labels.numpy()).tolist() == [3] * 10
    assert dm.train_set[0][0].shape == (3, 48, 48)


def test_intact_data_is_not_downloaded_again(fake_root, offline):
    dm = module(fake_root, download=True)
    dm.prepare_data()
    dm.setup()
    assert len(dm.test_set) == 20


def test_offline_without_data_is_one_clear_error(tmp_path, offline):
    started = time.monotonic()
    with pytest.raises(TransferlabError) as info:
        module(tmp_path / "data", download=True).setup()
    message = str(info.value)
    assert time.monotonic() - started < 10 and "\n" not in message
    assert f"CIFAR-10 was not found in {tmp_path / 'data' / 'cifar-10-batches-py'}" in message
    assert "downloading it failed" in message and "connect to the internet" in message
    assert "copy the extracted python version" in message


def test_missing_data_without_download(tmp_path):
    with pytest.raises(TransferlabError, match="not found in .*cifar-10-batches-py; connect to the internet and set "
                                               "data.download=true, or copy"):
        module(tmp_path).setup()


def test_corrupted_file_fails_the_md5_check(fake_root, offline):
    path = fake_root / "cifar-10-batches-py" / "data_batch_3"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TransferlabError, match=r"failing their MD5 check: data_batch_3\); connect") as info:
        module(fake_root).setup()
    assert "\n" not in str(info.value)
    with pytest.raises(TransferlabError, match="data_batch_3.* and downloading it failed"):
        module(fake_root, download=True).setup()


def test_fake_fails_the_real_md5s(tmp_path):
    make_fake_cifar10(tmp_path)  # no patch: torchvision expects the real files' MD5s
    with pytest.raises(TransferlabError, match="failing their MD5 check: data_batch_1, data_batch_2"):
        module(tmp_path).setup()
