"""Two domains for adaptation: a labelled source and an unlabelled target (labels, if any, for evaluation only).

Loaders:
    train: ``CombinedLoader({"source": ..., "target": ...}, mode="max_size_cycle")``: one epoch is the larger
        domain once, the smaller one cycled; each loader drops a final batch of one sample (BatchNorm).
    val: ``[source_val, target_val]``, i.e. ``dataloader_idx`` 0 and 1, so label-free validators see both domains.
    test: the target test split when the target is labelled, else the source test split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from transferlab.data.base import TransferDataModule
from transferlab.data.imagefolder import ImageFolderDataModule, find_image_files, list_class_folders, load_rgb
from transferlab.data.transforms import eval_transform, train_transform
from transferlab.errors import TransferlabError


class DomainDataModule(TransferDataModule):
    """Base of two-domain data. Subclasses fill ``train_set``/``val_set``/``test_set`` (source) and
    ``target_train``/``target_val`` and, when target labels exist, ``target_test`` in ``setup``.
    Unlabelled target images carry the label -1."""

    has_target_domain = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.target_train = self.target_val = self.target_test = None

    @property
    def target_labelled(self) -> bool:
        return self.target_test is not None

    def train_dataloader(self) -> CombinedLoader:
        return CombinedLoader({"source": self._loader(self.train_set, train=True),
                               "target": self._loader(self.target_train, train=True)}, mode="max_size_cycle")

    def val_dataloader(self) -> list:
        return [self._loader(self.val_set, train=False), self._loader(self.target_val, train=False)]

    def test_dataloader(self):
        return self._loader(self.target_test if self.target_labelled else self.test_set, train=False)

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
        **kwargs: see ``TransferDataModule``.
    """

    def __init__(self, source: str, target: str, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 crop_scale=(0.08, 1.0), hflip: bool = True, on_corrupt: str = "error", **kwargs):
        super().__init__(**kwargs)
        source_dir, target_dir = _folder("source", source), _folder("target", target)
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

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.source.setup(stage)
        self.train_set, self.val_set, self.test_set = self.source.train_set, self.source.val_set, self.source.test_set
        if self.target is not None:
            self.target.setup(stage)
            self.target_train, self.target_val = self.target.train_set, self.target.val_set
            self.target_test = self.target.test_set
            return
        order = np.random.default_rng(self.split_seed).permutation(len(self.target_files))
        held = max(int(round(self.val_fraction * len(order))), 2)
        if held >= len(order):
            raise TransferlabError(f"data.target has {len(order)} images: too few to hold out a validation share")
        files = np.asarray(self.target_files)
        self.target_val = UnlabelledImages(files[np.sort(order[:held])], eval_transform(self.data_config,
                                                                                        self.image_size))
        self.target_train = UnlabelledImages(files[np.sort(order[held:])], train_transform(
            self.data_config, self.image_size, self.crop_scale, self.hflip))
