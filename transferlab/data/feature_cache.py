"""Backbone features computed once per (backbone, weights, data, transform) and reused: linear probes on a cache.

A frozen backbone in eval mode maps an un-augmented image to the same feature every epoch, so a linear probe can run
it once and train its head(s) on the stored tensors. The cache key hashes everything the features depend on, so a
changed backbone, weight file, image, split or transform never reuses a stale file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from transferlab.contracts.errors import TransferlabError
from transferlab.extract import extract


def _hash_tensors(digest, tensors) -> None:
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())


def dataset_fingerprint(dataset: Dataset, digest) -> None:
    """Feed what ``dataset`` yields into ``digest``: file paths, sizes and mtimes, or the in-memory pixels."""
    digest.update(f"{type(dataset).__name__}:{len(dataset)}:{getattr(dataset, 'transform', None)!r}".encode())
    if hasattr(dataset, "samples"):  # ImageFolder-style: (path, label) pairs on disk
        for path, label in dataset.samples:
            stat = os.stat(path)
            digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):  # in-memory uint8 tensors
        _hash_tensors(digest, [torch.as_tensor(dataset.images), torch.as_tensor(dataset.labels)])
    else:
        raise TransferlabError(f"cannot fingerprint a {type(dataset).__name__} for the feature cache; "
                               "use data.cache_features=false")


def cache_key(backbone: torch.nn.Module, datasets: dict[str, Dataset], image_size: int) -> str:
    """A hex digest of the backbone's name and weights, the image size, and each split's data and transform."""
    digest = hashlib.sha256(json.dumps({"backbone": getattr(backbone, "name", type(backbone).__name__),
                                        "image_size": image_size}).encode())
    _hash_tensors(digest, backbone.state_dict().values())
    for name, dataset in sorted(datasets.items()):
        digest.update(name.encode())
        dataset_fingerprint(dataset, digest)
    return digest.hexdigest()[:24]


def unaugmented(train_set: Dataset, eval_set: Dataset) -> Dataset:
    """A shallow copy of ``train_set`` that applies ``eval_set``'s (deterministic) transform."""
    if not hasattr(train_set, "transform") or not hasattr(eval_set, "transform"):
        raise TransferlabError(f"{type(train_set).__name__} has no 'transform'; use data.cache_features=false")
    plain = copy.copy(train_set)
    plain.transform = eval_set.transform
    if hasattr(plain, "transforms"):  # torchvision VisionDataset applies ``transforms``
        plain.transforms = getattr(eval_set, "transforms", plain.transforms)
    return plain


def extract_features(backbone: torch.nn.Module, dataset: Dataset, batch_size: int = 256,
                     device: torch.device | str = "cpu", num_workers: int = 0) -> TensorDataset:
    """``TensorDataset(features, labels)`` of every item of ``dataset``, in order, with ``backbone`` in eval mode."""
    out = extract(lambda images: backbone(images).float(), DataLoader(dataset, batch_size=batch_size,
                                                                       num_workers=num_workers),
                  device=device, module=backbone)
    return TensorDataset(out["features"], out["labels"])


def cached_features(backbone: torch.nn.Module, datasets: dict[str, Dataset], image_size: int,
                    cache_dir: str | os.PathLike | None = None, **extract_kwargs) -> dict[str, TensorDataset]:
    """Features of each dataset, read from ``cache_dir/<key>.pt`` when present, else computed (and saved there)."""
    path = Path(cache_dir) / f"features-{cache_key(backbone, datasets, image_size)}.pt" if cache_dir else None
    if path is not None and path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        return {name: TensorDataset(stored[name]["features"], stored[name]["labels"]) for name in datasets}
    result = {name: extract_features(backbone, dataset, **extract_kwargs) for name, dataset in datasets.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({name: {"features": ds.tensors[0], "labels": ds.tensors[1]} for name, ds in result.items()}, tmp)
        tmp.replace(path)
    return result
