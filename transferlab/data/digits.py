"""scikit-learn's 1,797 real handwritten digits: the offline default dataset."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torchvision.transforms import v2

from transferlab.contracts.data_config import DataConfig
from transferlab.data.base import TensorImageDataset, TransferDataModule, few_shot, stratified_split
from transferlab.data.transforms import normalization


def load_digit_images(size: int) -> tuple[torch.Tensor, np.ndarray]:
    """All digits as uint8 RGB tensors ``(1797, 3, size, size)`` (bicubic upsampling of the 8x8 originals), and their
    labels."""
    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return images.mul(255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous(), digits.target


def digit_splits(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Stratified, seeded ``(train, val, test)`` indices; fractions are shares of all images."""
    rest, test = stratified_split(labels, test_fraction, seed)
    train, val = stratified_split(labels[rest], val_fraction / (1 - test_fraction), seed)
    return rest[train], rest[val], test


def domain_splits(images: torch.Tensor, labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int,
                  augment, plain) -> tuple[TensorImageDataset, ...]:
    """One domain of an in-memory pair: train (augmented), val, test, and train again without augmentation."""
    train, val, test = digit_splits(labels, val_fraction, test_fraction, seed)
    return (TensorImageDataset(images[train], labels[train], augment),
            TensorImageDataset(images[val], labels[val], plain),
            TensorImageDataset(images[test], labels[test], plain),
            TensorImageDataset(images[train], labels[train], plain))


def tensor_transforms(data_config: DataConfig, size: int, crop_scale) -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms of uint8 image tensors: a mild random-resized crop (no flips), then normalisation."""
    augment = v2.Compose([v2.RandomResizedCrop(size, scale=tuple(crop_scale), ratio=(0.9, 1.1), antialias=True),
                          *normalization(data_config)])
    return augment, v2.Compose(normalization(data_config))


class DigitsDataModule(TransferDataModule):
    """Handwritten digits 0-9 from ``sklearn.datasets.load_digits``, upsampled to ``image_size``.

    The split is stratified and seeded by ``split_seed``; the test split is never seen in training.

    Args:
        val_fraction: share of all images for validation.
        test_fraction: share of all images for testing.
        samples_per_class: keep only this many training images per class (few-shot); ``None`` keeps all.
        val_samples_per_class: keep only this many validation images per class, so that a few-shot run's
            checkpoint selection sees no more labels than its training does; ``None`` keeps all.
        crop_scale: area range of the training random-resized crop (no flips: digits are not mirror-symmetric).
        **kwargs: see ``TransferDataModule``; ``tasks`` may list ``digit`` (0-9), ``parity`` (even/odd) and
            ``ge5`` (below 5 / 5 or more).
    """

    def __init__(self, val_fraction: float = 0.1, test_fraction: float = 0.2, samples_per_class: int | None = None,
                 crop_scale=(0.7, 1.0), val_samples_per_class: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.samples_per_class, self.crop_scale = samples_per_class, tuple(crop_scale)
        self.val_samples_per_class = val_samples_per_class
        self.class_names = [str(d) for d in range(10)]

    def derived_tasks(self) -> dict:
        return {"digit": (self.class_names, lambda y: y), "parity": (["even", "odd"], lambda y: y % 2),
                "ge5": (["below 5", "5 or more"], lambda y: (y >= 5).astype(np.int64))}

    def make_splits(self, stage: str | None = None) -> None:
        images, labels = load_digit_images(self.image_size)
        train, val, test = digit_splits(labels, self.val_fraction, self.test_fraction, self.split_seed)
        train = few_shot(train, labels, self.samples_per_class, self.split_seed)
        val = few_shot(val, labels, self.val_samples_per_class, self.split_seed + 1)
        augment, plain = tensor_transforms(self.data_config, self.image_size, self.crop_scale)
        self.train_set = self.with_tasks(TensorImageDataset(images[train], labels[train], augment), labels[train])
        self.val_set = self.with_tasks(TensorImageDataset(images[val], labels[val], plain), labels[val])
        self.test_set = self.with_tasks(TensorImageDataset(images[test], labels[test], plain), labels[test])
