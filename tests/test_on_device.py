"""``data.on_device=true``: batches built on the device match the per-sample CPU path, draw per-sample crops and are
seeded by (seed, epoch) alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakes import make_fake_cifar10, patched_cifar10_md5
from torchvision.transforms import v2

from transferlab.contracts.errors import TransferlabError
from transferlab.data.base import TensorImageDataset
from transferlab.data.cifar10 import CIFAR10DataModule
from transferlab.data.digits import DigitsDataModule
from transferlab.data.on_device import DeviceImages, device_loader
from transferlab.experiment import train

CPU = torch.device("cpu")


def first_batch(dm, split: str = "train", epoch: int = 0):
    """The first batch of ``split`` after the DataModule's transfer hooks, as a training step sees it."""
    dm.setup()
    loader = getattr(dm, f"{split}_dataloader")()
    if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    return dm.on_after_batch_transfer(dm.transfer_batch_to_device(next(iter(loader)), CPU, 0), 0)


@pytest.fixture
def cifar_root(tmp_path):
    make_fake_cifar10(tmp_path)
    with patched_cifar10_md5(tmp_path):
        yield tmp_path


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_digits_match_the_cpu_path_when_the_crop_is_the_whole_image(split):
    kwargs = {"image_size": 32, "batch_size": 16, "crop_scale": (1.0, 1.0), "seed": 3}
    cpu, dev = first_batch(DigitsDataModule(**kwargs), split), first_batch(DigitsDataModule(on_device=True, **kwargs),
                                                                          split)
    assert dev[0].shape == cpu[0].shape == (16, 3, 32, 32) and dev[0].dtype == torch.float32
    torch.testing.assert_close(dev[0], cpu[0])  # same normalisation, same images
    assert torch.equal(dev[1], cpu[1])  # labels stay aligned with their images


def test_cifar_resize_and_normalise_match_the_cpu_path(cifar_root):
    kwargs = {"root": cifar_root, "download": False, "image_size": 48, "batch_size": 8, "augment": False}
    for split in ("train", "val", "test"):
        cpu = first_batch(CIFAR10DataModule(**kwargs), split)
        dev = first_batch(CIFAR10DataModule(on_device=True, **kwargs), split)
        assert dev[0].shape == (8, 3, 48, 48)
        torch.testing.assert_close(dev[0], cpu[0])
        assert torch.equal(dev[1], cpu[1])


def test_cifar_augmentation_is_seeded_by_seed_and_epoch_and_normalised_like_the_cpu_path(cifar_root):
    def make(**kw):
        return CIFAR10DataModule(root=cifar_root, download=False, image_size=32, batch_size=32, seed=5, **kw)

    a, b = first_batch(make(on_device=True)), first_batch(make(on_device=True))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(first_batch(make(on_device=True), epoch=1)[0], a[0])
    cpu = first_batch(make())
    assert torch.equal(cpu[1], a[1])  # the same sampler order
    assert abs(a[0].mean() - cpu[0].mean()) < 0.15 and abs(a[0].std() - cpu[0].std()) < 0.15


def pattern(n: int = 8, size: int = 16) -> torch.Tensor:
    """``n`` copies of one image whose every pixel is distinct."""
    image = torch.arange(3 * size * size).reshape(3, size, size) % 251
    return image.to(torch.uint8).expand(n, -1, -1, -1).contiguous()


def device_batch(transform, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    split = DeviceImages(TensorImageDataset(images, [0] * len(images), transform))
    return split.batch(torch.arange(len(images)), seed)[0]


def test_random_crop_is_an_exact_padded_window_drawn_per_image():
    images = pattern()
    out = device_batch(v2.RandomCrop(16, padding=4), images)
    padded = torch.nn.functional.pad(images[0], (4, 4, 4, 4))
    windows = {(y, x): padded[:, y:y + 16, x:x + 16] for y in range(9) for x in range(9)}
    found = [next(k for k, w in windows.items() if torch.equal(w, image)) for image in out]
    assert len(set(found)) > 1  # one draw per image, not one per batch


def test_random_resized_crop_draws_per_image_and_flip_p1_mirrors():
    images = pattern()
    out = device_batch(v2.RandomResizedCrop(16, scale=(0.2, 0.5)), images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert len({tuple(x.flatten().tolist()) for x in out}) > 1
    assert torch.equal(device_batch(v2.RandomHorizontalFlip(p=1.0), images), images.flip(-1))


def test_unsupported_inputs_are_clear_errors():
    with pytest.raises(TransferlabError, match="in-memory dataset"):
        device_loader([1, 2, 3], 2, None, False)
    with pytest.raises(TransferlabError, match="ColorJitter"):
        DeviceImages(TensorImageDataset(pattern(), [0] * 8, v2.ColorJitter(0.5)))


def test_training_runs_with_data_on_device(make_cfg):
    cfg = make_cfg("data.on_device=true", "logger=none")
    assert 0.0 <= train(cfg) <= 1.0
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= metrics["metrics"]["test/acc"] <= 1.0


def test_domain_adaptation_runs_with_data_on_device(make_cfg):
    """A domain pair's training batch is a dict of index batches: each domain becomes images on the device."""
    cfg = make_cfg("strategy=dann", "+data.on_device=true", "logger=none", "callbacks.evaluation_figures=null",
                   "callbacks.domain_report=null", "data.image_size=16")
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "dann/lambda" in metrics["metrics"]
