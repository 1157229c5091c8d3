"""CIFAR-10 through torchvision (MD5-checked), held in memory as uint8 tensors."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity
from torchvision.transforms import InterpolationMode, v2

from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError, one_line
from transferlab.data.base import TensorImageDataset, TransferDataModule, few_shot, stratified_split
from transferlab.data.transforms import normalization

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_VEHICLES = frozenset({"airplane", "automobile", "ship", "truck"})  # the other six classes are animals
NATIVE_SIZE = 32
DOWNLOAD_TIMEOUT_S = 60  # per socket operation, so an unreachable server fails instead of hanging forever


@contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _failing_files(folder: Path) -> tuple[list[str], list[str]]:
    """Names of the CIFAR-10 files in ``folder`` that are (missing, present but failing their MD5)."""
    expected = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    missing = [name for name, _ in expected if not (folder / name).is_file()]
    corrupt = [name for name, md5 in expected if (folder / name).is_file() and not check_integrity(folder / name, md5)]
    return missing, corrupt


def open_cifar10(root: str | os.PathLike, train: bool, download: bool) -> CIFAR10:
    """torchvision's ``CIFAR10`` split; missing, corrupted or undownloadable data is a one-line TransferlabError."""
    folder = Path(root) / CIFAR10.base_folder
    try:
        if download:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                return CIFAR10(str(root), train=train, download=True)
        return CIFAR10(str(root), train=train, download=False)
    except (OSError, RuntimeError, ValueError) as error:
        missing, corrupt = _failing_files(folder)
        if not missing and not corrupt:
            raise TransferlabError(f"cannot load CIFAR-10 from {folder}: {one_line(error)}") from error
        if len(missing) == len(CIFAR10.train_list + CIFAR10.test_list) + 1:
            problem = f"CIFAR-10 was not found in {folder}"
        else:
            parts = ([f"missing: {', '.join(missing)}"] if missing else []) + \
                    ([f"failing their MD5 check: {', '.join(corrupt)}"] if corrupt else [])
            problem = f"CIFAR-10 in {folder} is incomplete or corrupted ({'; '.join(parts)})"
        if download:
            problem += f" and downloading it failed ({one_line(error)})"
        fix = "connect to the internet and set data.download=true" if not download else "connect to the internet"
        raise TransferlabError(f"{problem}; {fix}, or copy the extracted python version of CIFAR-10 "
                               f"(the files in cifar-10-python.tar.gz from {CIFAR10_URL}) into {folder}") from error


def as_uint8_nchw(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 numpy images as a contiguous ``(N, C, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def cifar_eval_transform(data_config: DataConfig, size: int) -> v2.Compose:
    """Resize the 32 px uint8 tensor to ``size`` (no-op at 32), then normalise."""
    resize = [] if size == NATIVE_SIZE else [
        v2.Resize(size, interpolation=InterpolationMode(data_config.interpolation), antialias=True)]
    return v2.Compose([v2.ToImage(), *resize, *normalization(data_config)])


def cifar_train_transform(data_config: DataConfig, size: int, crop_scale=None, hflip: bool = True) -> v2.Compose:
    """Resize to ``size``, then pad-by-``size//8``-and-random-crop (``crop_scale=None``, the classic CIFAR recipe)
    or a random-resized crop of that area range; optional flip; normalise."""
    interpolation = InterpolationMode(data_config.interpolation)
    if crop_scale is None:
        resize = [] if size == NATIVE_SIZE else [v2.Resize(size, interpolation=interpolation, antialias=True)]
        ops = [*resize, v2.RandomCrop(size, padding=size // 8)]
    else:
        ops = [v2.RandomResizedCrop(size, scale=tuple(crop_scale), interpolation=interpolation, antialias=True)]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose([v2.ToImage(), *ops, *normalization(data_config)])


class CIFAR10DataModule(TransferDataModule):
    """CIFAR-10: 50,000 training and 10,000 test 32x32 images of 10 classes, all held in memory as uint8.

    Train/val is a stratified split of the official training set seeded by ``split_seed``; test is the official
    test set. torchvision's MD5 check of every file is kept.

    Args:
        root: folder that holds (or will hold) ``cifar-10-batches-py``.
        download: fetch the data when it is missing or fails its MD5 check.
        val_fraction: share of the official training set held out for validation.
        samples_per_class: keep only this many training images per class (few-shot); ``None`` keeps all.
        val_samples_per_class: keep only this many validation images per class; ``None`` keeps all.
        augment: random crops and flips in training (otherwise the eval transform).
        crop_scale: ``None`` pads by ``image_size // 8`` and random-crops back; an area range such as
            ``(0.35, 1.0)`` uses a random-resized crop instead.
        hflip: random horizontal flips when augmenting.
        **kwargs: see ``TransferDataModule`` (``image_size=32`` keeps the native resolution); ``tasks`` may list
            ``object`` (the 10 classes) and ``coarse`` (animal / vehicle).
    """

    def __init__(self, root: str | os.PathLike = "data", download: bool = True, val_fraction: float = 0.1,
                 samples_per_class: int | None = None, augment: bool = True, crop_scale=None, hflip: bool = True,
                 val_samples_per_class: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(os.path.expanduser(str(root)))
        self.download, self.val_fraction, self.samples_per_class = bool(download), float(val_fraction), \
            samples_per_class
        self.val_samples_per_class = val_samples_per_class
        self.augment, self.hflip = bool(augment), bool(hflip)
        self.crop_scale = None if crop_scale is None else tuple(crop_scale)
        self.class_names = list(CIFAR10_CLASSES)  # known before setup; confirmed from batches.meta there

    def derived_tasks(self) -> dict:
        vehicle = np.array([name in CIFAR10_VEHICLES for name in self.class_names], dtype=np.int64)
        return {"object": (self.class_names, lambda y: y), "coarse": (["animal", "vehicle"], lambda y: vehicle[y])}

    def prepare_data(self) -> None:
        """Download once per node (Lightning calls this on one process only)."""
        if self.download:
            open_cifar10(self.root, train=False, download=True)

    def make_splits(self, stage: str | None = None) -> None:
        official_train = open_cifar10(self.root, train=True, download=self.download)
        official_test = open_cifar10(self.root, train=False, download=False)
        self.class_names = list(official_train.classes)
        images, labels = as_uint8_nchw(official_train.data), np.asarray(official_train.targets)
        train, val = stratified_split(labels, self.val_fraction, self.split_seed)
        train = few_shot(train, labels, self.samples_per_class, self.split_seed)
        val = few_shot(val, labels, self.val_samples_per_class, self.split_seed + 1)
        evaluation = cifar_eval_transform(self.data_config, self.image_size)
        training = cifar_train_transform(self.data_config, self.image_size, self.crop_scale, self.hflip) \
            if self.augment else evaluation
        test_labels = np.asarray(official_test.targets)
        self.val_set = self.with_tasks(TensorImageDataset(images[val], labels[val], evaluation), labels[val])
        self.test_set = self.with_tasks(TensorImageDataset(as_uint8_nchw(official_test.data), test_labels, evaluation),
                                        test_labels)
        self.train_set = self.with_tasks(TensorImageDataset(images[train], labels[train], training), labels[train])
