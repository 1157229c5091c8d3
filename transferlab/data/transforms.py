"""torchvision transforms v2 pipelines built from a backbone's ``DataConfig``."""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from transferlab.contracts.data_config import DataConfig


def _interp(data_config: DataConfig) -> InterpolationMode:
    return InterpolationMode(data_config.interpolation)


def normalization(data_config: DataConfig) -> list:
    """The last steps of every pipeline: an image tensor (uint8) to floats in [0, 1], normalised with the backbone's
    mean and std."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(data_config.mean), std=list(data_config.std))]


def train_transform(data_config: DataConfig, image_size: int | None = None, crop_scale=(0.08, 1.0),
                    hflip: bool = True) -> v2.Compose:
    """Random resized crop (+ optional flip) at ``image_size`` (default: the backbone's), then normalise."""
    size = image_size or data_config.input_size
    ops = [v2.ToImage(), v2.RandomResizedCrop(size, scale=tuple(crop_scale), interpolation=_interp(data_config),
                                              antialias=True)]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose(ops + normalization(data_config))


def eval_transform(data_config: DataConfig, image_size: int | None = None, crop_pct: float | None = None) -> v2.Compose:
    """Resize to ``size / crop_pct`` and centre-crop to ``size`` (``crop_pct=1``: plain resize), then normalise."""
    size = image_size or data_config.input_size
    crop_pct = data_config.crop_pct if crop_pct is None else crop_pct
    ops = [v2.ToImage(), v2.Resize(int(round(size / crop_pct)), interpolation=_interp(data_config), antialias=True),
           v2.CenterCrop(size)]
    return v2.Compose(ops + normalization(data_config))
