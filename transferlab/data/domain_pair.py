"""Two domains for adaptation: a labelled source and an unlabelled target (labels, if any, for evaluation only).

Loaders:
    train: ``CombinedLoader({"source": ..., "target": ...}, mode="max_size_cycle")``: one epoch is the larger
        domain once, the smaller one cycled (a new order each pass); each domain draws its order from its own
        seed stream, so no source image is tied to a target image; each loader drops a final batch of one sample
        (BatchNorm).
    val: ``[source_val, target_val, source_train_eval, target_train_eval]`` (``dataloader_idx`` 0-3): source
        accuracy, the target for the label-free validators, and (at most ``validator_samples`` of) each training
        split without augmentation, on which DEV fits its domain classifier.
    test: ``[source_test]``, plus ``target_test`` when the target is labelled (``test/source_acc``,
        ``test/target_acc``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import Dataset, Subset
from torchvision.datasets.folder import IMG_EXTENSIONS

from transferlab.contracts.errors import TransferlabError
from transferlab.data.base import TransferDataModule
from transferlab.data.imagefolder import ImageFolderDataModule, find_image_files, list_class_folders, load_rgb
from transferlab.data.transforms import eval_transform, train_transform


class DomainDataModule(TransferDataModule):
    """Base of two-domain data. Subclasses fill ``train_set``/``val_set``/``test_set`` (source) and
    ``target_train``/``target_val`` and, when target labels exist, ``target_test`` in ``setup``, and also
    ``source_train_eval``/``target_train_eval``: the two training splits' images with the *evaluation* transform
    (no augmentation), from which the DEV validator fits its domain classifier.
    Unlabelled target images carry the label -1."""

    has_target_domain = True

    def __init__(self, validator_samples: int = 1000, **kwargs):
        if kwargs.get("cache_features"):
            raise TransferlabError("data.cache_features=true is for one-domain data: two-domain data is for "
                                   "strategies that train the backbone")
        super().__init__(**kwargs)
        self.validator_samples = int(validator_samples)
        self.target_train = self.target_val = self.target_test = None
        self.source_train_eval = self.target_train_eval = None

    @property
    def target_labelled(self) -> bool:
        return self.target_test is not None

    def check_domains(self) -> None:
        """Each training split holds at least one full batch (else there is no step to pair it in)."""
        for name, dataset in (("data.source", self.train_set), ("data.target", self.target_train)):
            if len(dataset) < max(self.batch_size, 2):
                raise TransferlabError(f"{name}: its training split has {len(dataset)} image(s), fewer than one "
                                       f"batch (data.batch_size={self.batch_size}); add images or lower "
                                       f"data.batch_size")

    def train_dataloader(self) -> CombinedLoader:
        return CombinedLoader({"source": self._loader(self.train_set, train=True, stream=0),
                               "target": self._loader(self.target_train, train=True, stream=1)},
                              mode="max_size_cycle")

    def _validator_subset(self, dataset: Dataset) -> Dataset:
        """At most ``validator_samples`` images of ``dataset``, a fixed seeded choice."""
        if len(dataset) <= self.validator_samples:
            return dataset
        chosen = np.random.default_rng(self.split_seed).permutation(len(dataset))[: self.validator_samples]
        return Subset(dataset, np.sort(chosen).tolist())

    def val_dataloader(self) -> list:
        return [self._loader(self.val_set, train=False), self._loader(self.target_val, train=False),
                self._loader(self._validator_subset(self.source_train_eval), train=False),
                self._loader(self._validator_subset(self.target_train_eval), train=False)]

    def test_dataloader(self) -> list:
        return [self._loader(self.test_set, train=False),
                *([self._loader(self.target_test, train=False)] if self.target_labelled else [])]

    def target_test_dataloader(self):
        """The labelled target test split (for reports only), or None."""
        return self._loader(self.target_test, train=False) if self.target_labelled else None


class UnlabelledImages(Dataset):
    """Image files without classes: ``(image, -1)`` pairs."""

    def __init__(self, paths: list[str], transform=None):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = load_rgb(self.paths[i])
        return (self.transform(image) if self.transform else image), -1


def _folder(key: str, value) -> Path:
    if not value:
        raise TransferlabError(f"data.{key} is not set; set it to a folder of images")
    folder = Path(os.path.expanduser(str(value)))
    if not folder.is_dir():
        raise TransferlabError(f"data.{key}={value} {'is not a folder' if folder.exists() else 'does not exist'}")
    return folder


class DomainPairDataModule(DomainDataModule):
    """A labelled source ImageFolder and a target folder, both with the backbone's transforms.

    The source is ``source/<class>/...`` or ``source/{train,val,test}/<class>/...``, split like ``data=imagefolder``.
    The target is the same (labelled: its labels serve evaluation only, and its class folders must equal the
    source's), or a folder of images with no class subfolders (unlabelled: a ``val_fraction`` share is held out for
    the validators and testing falls back to the source test split). Target val/test folders are given as
    ``target/val/`` and ``target/test/``; without them those splits are held out of the target images.

    Args:
        source: labelled source folder.
        target: target folder.
        val_fraction, test_fraction, crop_scale, hflip, on_corrupt: as in ``ImageFolderDataModule``, for both.
            ``crop_scale`` defaults to (0.5, 1.0), not ImageNet's (0.08, 1.0): a crop of 8% of a 32-pixel image
            keeps about 9 x 9 pixels of it.
        validator_samples: images of each training split the DEV validator fits on (a fixed seeded subset).
        **kwargs: see ``TransferDataModule``.
    """

    def __init__(self, source: str, target: str, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 crop_scale=(0.5, 1.0), hflip: bool = True, on_corrupt: str = "error", validator_samples: int = 1000,
                 **kwargs):
        super().__init__(validator_samples=validator_samples, **kwargs)
        source_dir, target_dir = _folder("source", source), _folder("target", target)
        if source_dir.resolve() == target_dir.resolve():
            raise TransferlabError(f"data.source and data.target are the same folder ({source_dir}); domain "
                                   f"adaptation needs two domains: point data.target at the unlabelled images")
        common = dict(val_fraction=val_fraction, test_fraction=test_fraction, crop_scale=crop_scale, hflip=hflip,
                      on_corrupt=on_corrupt, **kwargs)
        self.source = ImageFolderDataModule(source_dir, **common)
        self.class_names = self.source.class_names
        self.target, self.target_files = None, []
        if list_class_folders(target_dir):
            self.target = ImageFolderDataModule(target_dir, **common)
            if self.target.class_names != self.class_names:
                only_source = sorted(set(self.class_names) - set(self.target.class_names))
                only_target = sorted(set(self.target.class_names) - set(self.class_names))
                raise TransferlabError(f"source and target class names differ: only in data.source={source}: "
                                       f"{only_source or 'none'}, only in data.target={target}: "
                                       f"{only_target or 'none'}; give both the same class subfolders")
        else:
            self.target_files = find_image_files(str(target_dir), IMG_EXTENSIONS)
            if not self.target_files:
                raise TransferlabError(f"data.target={target} has no images ({' '.join(IMG_EXTENSIONS)}) and no "
                                       f"class subfolders; put the target images in it")
        self.val_fraction, self.crop_scale, self.hflip = float(val_fraction), tuple(crop_scale), bool(hflip)

    def make_splits(self, stage: str | None = None) -> None:
        self.source.setup(stage)
        self.train_set, self.val_set, self.test_set = self.source.train_set, self.source.val_set, self.source.test_set
        evaluation = eval_transform(self.data_config, self.image_size)
        self.source_train_eval = self.train_set.keep(range(len(self.train_set)), evaluation)
        if self.target is not None:
            self.target.setup(stage)
            self.target_train, self.target_val = self.target.train_set, self.target.val_set
            self.target_test = self.target.test_set
            self.target_train_eval = self.target_train.keep(range(len(self.target_train)), evaluation)
        else:
            order = np.random.default_rng(self.split_seed).permutation(len(self.target_files))
            held = max(int(round(self.val_fraction * len(order))), 2)
            if held >= len(order):
                raise TransferlabError(f"data.target has {len(order)} images: too few to hold out a validation "
                                       f"share; add target images")
            files = np.asarray(self.target_files)
            train_files = files[np.sort(order[held:])]
            self.target_val = UnlabelledImages(files[np.sort(order[:held])], evaluation)
            self.target_train = UnlabelledImages(train_files, train_transform(
                self.data_config, self.image_size, self.crop_scale, self.hflip))
            self.target_train_eval = UnlabelledImages(train_files, evaluation)
        self.check_domains()
