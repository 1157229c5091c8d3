"""Data on the accelerator (``data.on_device=true``): an in-memory split's uint8 tensor is copied to the device once,
and crops, flips and normalisation run there on whole batches, so small-image training is not bound by CPU workers.

The loader yields only indices (``IndexBatch``); the DataModule's ``on_after_batch_transfer`` turns them into images
on the device. The split's own per-sample ``v2`` pipeline is translated op by op: deterministic ops (resize, centre
crop, dtype, normalise) run on the batch as they are; random ones (``RandomCrop``, ``RandomResizedCrop``,
``RandomHorizontalFlip``) draw their parameters per sample, since a ``v2`` transform called on a batch applies one
draw to every image. Draws come from a CPU generator seeded by the sampler's (seed, epoch)-derived sample seed, so a
batch is the same on every device and after a resume.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.ops import roi_align
from torchvision.transforms import v2

from transferlab.contracts.errors import TransferlabError

DETERMINISTIC = (v2.Resize, v2.CenterCrop, v2.ToDtype, v2.Normalize)


def random_crop(op: v2.RandomCrop, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Zero-pad, then an independent ``op.size`` crop of every image (integer offsets: exact pixels)."""
    left, top, right, bottom = op.padding if op.padding is not None else (0, 0, 0, 0)
    x = F.pad(x, (left, right, top, bottom), value=float(op.fill if isinstance(op.fill, (int, float)) else 0))
    (h, w), (n, c) = op.size, x.shape[:2]
    oy = torch.randint(x.shape[-2] - h + 1, (n, 1), generator=g).to(x.device)
    ox = torch.randint(x.shape[-1] - w + 1, (n, 1), generator=g).to(x.device)
    rows, cols = oy + torch.arange(h, device=x.device), ox + torch.arange(w, device=x.device)
    batch, channel = torch.arange(n, device=x.device), torch.arange(c, device=x.device)
    return x[batch[:, None, None, None], channel[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def resized_crop_boxes(op: v2.RandomResizedCrop, n: int, height: int, width: int, g: torch.Generator,
                       tries: int = 10) -> torch.Tensor:
    """Integer boxes ``(n, 4)`` as x1, y1, x2, y2, drawn like torchvision's: the first of ``tries`` area/ratio draws
    that fits, else the whole image."""
    area = height * width * torch.empty(n, tries).uniform_(*op.scale, generator=g)
    log_ratio = torch.empty(n, tries).uniform_(math.log(op.ratio[0]), math.log(op.ratio[1]), generator=g)
    w = torch.sqrt(area * torch.exp(log_ratio)).round()
    h = torch.sqrt(area / torch.exp(log_ratio)).round()
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), -1)
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.tensor(float(width)))
    h = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.tensor(float(height)))
    x1 = (torch.rand(n, generator=g) * (width - w + 1)).floor()
    y1 = (torch.rand(n, generator=g) * (height - h + 1)).floor()
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def random_resized_crop(op: v2.RandomResizedCrop, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per-image random-resized crops in one ``roi_align`` call (bilinear, averaging when shrinking)."""
    boxes = resized_crop_boxes(op, len(x), x.shape[-2], x.shape[-1], g)
    rois = torch.cat([torch.arange(len(x), dtype=torch.float32)[:, None], boxes], 1).to(x.device)
    out = roi_align(x.float(), rois, output_size=tuple(op.size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out


def random_flip(op: v2.RandomHorizontalFlip, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=g) < op.p).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x)


RANDOM = {v2.RandomCrop: random_crop, v2.RandomResizedCrop: random_resized_crop,
          v2.RandomHorizontalFlip: random_flip}


def batched_ops(transform) -> list:
    """The steps of a per-sample ``v2`` pipeline as functions ``(batch, generator) -> batch``."""
    ops = list(transform.transforms) if isinstance(transform, v2.Compose) else [transform] if transform else []
    steps = []
    for op in ops:
        if isinstance(op, v2.Compose):
            steps += batched_ops(op)
        elif isinstance(op, DETERMINISTIC):
            steps.append(lambda x, g, op=op: op(x))
        elif type(op) in RANDOM:
            steps.append(partial(RANDOM[type(op)], op))
        elif not isinstance(op, v2.ToImage):
            raise TransferlabError(f"data.on_device=true cannot run {type(op).__name__} on batches; "
                                   "set data.on_device=false")
    return steps


class DeviceImages:
    """One split's uint8 images and labels, copied to each device once, and its transform as batched steps."""

    def __init__(self, dataset):
        self.images, self.labels, self.steps = dataset.images, dataset.labels, batched_ops(dataset.transform)
        self.copies: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(self, index: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformed images and labels of ``index`` on ``index.device``."""
        if index.device not in self.copies:
            self.copies[index.device] = (self.images.to(index.device), self.labels.to(index.device))
        images, labels = self.copies[index.device]
        generator, x = torch.Generator().manual_seed(seed), images[index]
        for step in self.steps:
            x = step(x, generator)
        return x, labels[index]


class IndexBatch(NamedTuple):
    """What the loader yields: Lightning moves ``index`` to the device and leaves the rest alone."""

    split: DeviceImages
    index: torch.Tensor
    seed: int


class Keys(Dataset):
    """Returns the sampler's key (an index or an ``(index, seed)`` pair) as it is."""

    def __init__(self, length: int):
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        return key


def _collate(split: DeviceImages, keys: list) -> IndexBatch:
    if isinstance(keys[0], tuple):
        return IndexBatch(split, torch.tensor([k for k, _ in keys]), int(keys[0][1]))
    return IndexBatch(split, torch.tensor(keys), 0)


_SPLITS: WeakKeyDictionary = WeakKeyDictionary()


def device_loader(dataset, batch_size: int, sampler: Sampler | None, drop_last: bool) -> DataLoader:
    """A loader of ``IndexBatch`` over an in-memory ``TensorImageDataset`` (no workers: there is nothing to do)."""
    if not all(hasattr(dataset, a) for a in ("images", "labels", "transform")):
        raise TransferlabError(f"data.on_device=true needs an in-memory dataset (digits, cifar10), not "
                               f"{type(dataset).__name__}; set data.on_device=false")
    if dataset not in _SPLITS:
        _SPLITS[dataset] = DeviceImages(dataset)
    return DataLoader(Keys(len(dataset)), batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=partial(_collate, _SPLITS[dataset]))


def materialize(batch):
    """``on_after_batch_transfer``: an ``IndexBatch`` becomes ``(images, labels)``, also as the values of a dict (a
    domain pair's ``{"source": ..., "target": ...}``); any other batch is returned."""
    if isinstance(batch, dict):
        return {key: materialize(value) for key, value in batch.items()}
    return batch.split.batch(batch.index, batch.seed) if isinstance(batch, IndexBatch) else batch
