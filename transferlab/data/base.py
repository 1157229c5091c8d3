"""Shared pieces of every DataModule: loaders, seeded splits, few-shot subsets, in-memory image tensors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError
from transferlab.contracts.tasks import task_entries, task_info
from transferlab.data.feature_cache import cached_features, unaugmented
from transferlab.data.on_device import device_loader, materialize
from transferlab.data.task_labels import TaskLabels
from transferlab.rng import seed_torch


class TensorImageDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` held in memory, with integer labels and a transform."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], transform: Callable | None = None):
        self.images, self.labels, self.transform = images, torch.as_tensor(labels, dtype=torch.long), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.labels[i]


def stream_seed(*keys: int) -> int:
    """A 64-bit generator seed from integer keys (seed, stream, epoch, pass): independent streams for any keys."""
    return int(np.random.SeedSequence([int(k) % 2**64 for k in keys]).generate_state(1, np.uint64)[0])


class EpochSeededSampler(Sampler[tuple[int, int]]):
    """A shuffle and per-sample augmentation seeds that depend only on (seed, stream, epoch, pass).

    Yields ``(index, sample_seed)`` pairs for ``SeededSamples``: a resumed run sees the same order and the same
    random crops as an uninterrupted one, whatever the number of workers. Lightning calls ``set_epoch`` every epoch.

    Each domain of a pair draws from its own ``stream``, so source and target orders are independent. Within an
    epoch a shorter domain is iterated again (``CombinedLoader(mode="max_size_cycle")``): each such pass gets a new
    order. After a mid-epoch resume, the first iteration of the epoch continues where training stopped: ``done``
    batches into the epoch is pass ``done // batches`` at batch ``done % batches`` (Lightning restores its progress
    counters but restarts the loader); later passes start from their beginning.

    Args:
        length: dataset size.
        seed: the run's seed.
        stream: which independent stream of orders (0 = source/single domain, 1 = target).
        batch_size: the loader's batch size (to turn batches into samples).
        drop_last: whether the loader drops its last partial batch.
        done: training batches of the current epoch already completed, read at the epoch's first draw.
    """

    def __init__(self, length: int, seed: int, stream: int = 0, batch_size: int = 1, drop_last: bool = False,
                 done: Callable[[], int] | None = None):
        self.length, self.seed, self.stream, self.epoch, self.done = length, seed, stream, 0, done
        self.batch_size, self.drop_last = int(batch_size), bool(drop_last)
        self._pass_epoch: int | None = None  # the epoch whose passes ``_pass`` counts
        self._pass = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def batches(self) -> int:
        """Batches in one pass over the data."""
        return self.length // self.batch_size if self.drop_last else -(-self.length // self.batch_size)

    def _begin_pass(self) -> int:
        """Advance to the pass now starting; return the sample it starts at."""
        if self._pass_epoch != self.epoch:  # the epoch's first iteration (or the first after a resume)
            self._pass_epoch = self.epoch
            self._pass, batch = divmod(self.done() if self.done else 0, max(self.batches, 1))
            return batch * self.batch_size
        self._pass += 1  # the cycled domain starts again within the epoch
        return 0

    def __iter__(self):
        # A generator: drawn at the first ``next``, after Lightning's ``set_epoch``, even on resume.
        start = self._begin_pass()
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.stream, self.epoch, self._pass))
        order = torch.randperm(self.length, generator=generator)
        seeds = torch.randint(2**62, (self.length,), generator=generator)
        yield from zip(order.tolist()[start:], seeds.tolist()[start:])

    def __len__(self) -> int:
        return self.length


class SeededSamples(Dataset):
    """Wraps a dataset so ``dataset[(index, seed)]`` runs its random transforms under ``torch.manual_seed(seed)``.

    The global random state is untouched (the CPU generator's state is restored afterwards, as
    ``torch.random.fork_rng(devices=[])`` does, at a third of its cost per sample), so model-side randomness such as
    dropout is independent of data loading.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int):
        if not isinstance(key, tuple):  # a sampler Lightning substituted (e.g. overfit_batches): plain index
            return self.dataset[key]
        index, seed = key
        state = torch.default_generator.get_state()
        try:
            seed_torch(seed)
            return self.dataset[index]
        finally:
            torch.default_generator.set_state(state)


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, held_out)`` with ``fraction`` of each class held out, reproducibly."""
    if not 0.0 < fraction < 1.0:
        raise TransferlabError(f"split fraction {fraction} must be in (0, 1)")
    index = np.arange(len(labels))
    kept, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=np.asarray(labels))
    return np.sort(kept), np.sort(held)


def few_shot(indices: np.ndarray, labels: Sequence[int], samples_per_class: int | None, seed: int) -> np.ndarray:
    """The first ``samples_per_class`` of each class, after a seeded shuffle (all indices when None)."""
    if samples_per_class is None:  # data.samples_per_class >= 1 is checked at startup (contracts.checks.RULES)
        return indices
    labels = np.asarray(labels)
    shuffled = np.random.default_rng(seed).permutation(indices)
    chosen = [shuffled[labels[shuffled] == c][:samples_per_class] for c in np.unique(labels[indices])]
    return np.sort(np.concatenate(chosen))


class TransferDataModule(L.LightningDataModule):
    """Base DataModule: subclasses fill ``class_names`` in ``__init__`` and the three datasets in ``make_splits``.

    ``setup`` builds the splits once (``make_splits``); with ``cache_features``, ``setup("fit")`` then runs the
    frozen ``feature_extractor`` once over the un-augmented training images and the validation images and replaces
    ``train_set``/``val_set`` with the stored features (``transferlab.data.feature_cache``); ``test_set`` stays
    images. Values are checked at startup (``contracts.checks.RULES``), not again here.

    Args:
        data_config: the backbone's preprocessing (mean, std, input size, interpolation).
        image_size: training/eval resolution; ``None`` uses the backbone's input size.
        batch_size: images per batch (per device).
        num_workers: loader worker processes.
        pin_memory: pin host memory for faster GPU copies.
        persistent_workers: keep workers alive between epochs.
        split_seed: seed of the train/val(/test) split, independent of the training seed.
        seed: seed of the shuffle order.
        tasks: ``None`` for single-task ``(image, label)`` batches, or task names (or ``{name, ...}`` dicts) from
            ``derived_tasks()`` for multi-task ``(image, {task: label})`` batches (see ``transferlab.data.tasks``).
        on_device: keep in-memory uint8 images on the accelerator and augment there in batches
            (``transferlab.data.on_device``); the other loader options then do not apply.
        cache_features: train on features of ``feature_extractor`` computed once in ``setup("fit")`` (no
            augmentation); for a frozen backbone only (``strategy=linear_probe``).
        cache_dir: folder that keeps those features across runs, keyed by a content hash; ``None``: memory only.
        feature_extractor: the frozen network (the backbone) whose features are cached.
    """

    def __init__(self, data_config: DataConfig | None = None, image_size: int | None = None, batch_size: int = 64,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False,
                 split_seed: int = 0, seed: int | None = 0, tasks: Sequence[str | Mapping] | None = None,
                 on_device: bool = False, cache_features: bool = False, cache_dir: str | None = None,
                 feature_extractor: torch.nn.Module | None = None):
        super().__init__()
        self.task_entries = task_entries(tasks)
        if cache_features and feature_extractor is None:
            raise TransferlabError("data.cache_features=true needs the backbone as feature_extractor "
                                   "(python -m transferlab.run passes it with strategy=linear_probe)")
        if cache_features and on_device:
            raise TransferlabError("data.cache_features=true and data.on_device=true exclude each other: cached "
                                   "features are no images to augment on the device; set one of them to false")
        self.cache_features, self.cache_dir = bool(cache_features), cache_dir
        self.feature_extractor = feature_extractor if cache_features else None
        self.data_config = data_config or DataConfig()
        self.image_size = image_size or self.data_config.input_size
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers and num_workers > 0
        self.split_seed, self.seed = split_seed, 0 if seed is None else seed
        self.on_device = bool(on_device)
        self.class_names: list[str] = []
        self.train_set = self.val_set = self.test_set = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        """The splits, built once; for ``fit`` with ``cache_features``, train/val become cached features."""
        if self.train_set is None:
            self.make_splits(stage)
        if stage == "fit" and self.cache_features and not isinstance(self.train_set, TensorDataset):
            self.use_cached_features()

    def make_splits(self, stage: str | None = None) -> None:
        """Fill ``train_set``, ``val_set`` and ``test_set`` (called once, by ``setup``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_splits")

    def use_cached_features(self) -> None:
        """Replace ``train_set``/``val_set`` with ``feature_extractor``'s features of their images (train without
        augmentation), computed on the trainer's device (CPU without one) or read from ``cache_dir``."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.feature_extractor.to(device)
        splits = {"train": unaugmented(self.train_set, self.val_set), "val": self.val_set}
        cached = cached_features(self.feature_extractor, splits, self.image_size, self.cache_dir,
                                 batch_size=max(self.batch_size, 256), device=device)
        self.train_set, self.val_set = cached["train"], cached["val"]

    def derived_tasks(self) -> dict[str, tuple[Sequence[str], Callable[[np.ndarray], np.ndarray]]]:
        """Tasks computed from the class label: ``{name: (class names, label -> task label)}``. Subclasses add."""
        return {"class": (self.class_names, lambda labels: labels)}

    @property
    def tasks(self) -> dict[str, dict] | None:
        """``{name: {num_classes, class_names, kind}}`` of the selected tasks; None when single-task."""
        if not self.task_entries:
            return None
        derived = self.derived_tasks()
        unknown = [e["name"] for e in self.task_entries if e["name"] not in derived]
        if unknown:
            raise TransferlabError(f"unknown task(s) {unknown}: {type(self).__name__} derives {sorted(derived)}")
        return {e["name"]: task_info(len(derived[e["name"]][0]), derived[e["name"]][0]) for e in self.task_entries}

    def with_tasks(self, dataset: Dataset, labels: Sequence[int]) -> Dataset:
        """``dataset`` as it is when single-task, else wrapped to yield ``(image, {task: label})`` from ``labels``."""
        if not self.task_entries:
            return dataset
        derived, labels = self.derived_tasks(), np.asarray(labels)
        return TaskLabels(dataset, {name: torch.as_tensor(derived[name][1](labels), dtype=torch.long)
                                    for name in self.tasks})

    def _loader(self, dataset, train: bool, stream: int = 0) -> DataLoader:
        # A final training batch of one sample would crash BatchNorm: drop it, and only it.
        drop_last = train and len(dataset) % self.batch_size == 1
        sampler = EpochSeededSampler(len(dataset), self.seed, stream, self.batch_size, drop_last,
                                     self._batches_done) if train else None
        if self.on_device:
            return device_loader(dataset, self.batch_size, sampler, drop_last)
        return DataLoader(SeededSamples(dataset) if train else dataset, batch_size=self.batch_size,
                          num_workers=self.num_workers, sampler=sampler,
                          drop_last=drop_last, pin_memory=self.pin_memory, persistent_workers=self.persistent_workers)

    def _batches_done(self) -> int:
        """Training batches of the current epoch already completed (non-zero only after a mid-epoch resume)."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return materialize(batch)  # on_device index batches become images; other batches pass through

    def state_dict(self) -> dict:
        return {"class_names": list(self.class_names)}
