"""Images in class subfolders (``root/<class>/*.jpg``), optionally pre-split into ``train/``, ``val/`` and ``test/``."""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.vision import StandardTransform

from transferlab.atomic import write_text
from transferlab.contracts.errors import TransferlabError, one_line
from transferlab.data.base import TransferDataModule, few_shot, stratified_split
from transferlab.data.labels_csv import ImageFiles, LabelsTable
from transferlab.data.task_labels import TaskLabels
from transferlab.data.transforms import eval_transform, train_transform

log = logging.getLogger(__name__)

#: Colour that transparent pixels are composited over. White, because transparent backgrounds of icons, logos and
#: product photos are meant to be seen on a light page; dropping alpha instead exposes arbitrary hidden RGB values.
ALPHA_BACKGROUND = (255, 255, 255)
#: Folder names that are never classes, besides any name starting with '.' (e.g. ``.ipynb_checkpoints``).
IGNORED_FOLDERS = frozenset({"__MACOSX"})
ON_CORRUPT = ("error", "skip")
_SHOWN = 3  # bad files named in one error line


def _high_depth_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """8-bit version of 16-bit/32-bit/float pixels, scaled by their bit range (65535 -> 255), never saturated.

    ``I;16*`` is 16-bit: divided by 257. ``I`` (32-bit int) holding values in 0..65535 (how Pillow widens 16-bit
    PGM/TIFF) is treated as 16-bit too, other ``I`` data is stretched from its min..max. ``F`` in 0..1 is
    multiplied by 255, in 0..255 kept, otherwise stretched from its min..max.
    """
    values = values.astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif mode == "F" and low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, correctly for every Pillow mode.

    Alpha (LA, La, PA, RGBA, RGBa, and P/L/RGB with a transparency key) is composited over ``ALPHA_BACKGROUND``;
    16-bit, 32-bit and float greyscale is scaled by bit range (see ``_high_depth_to_uint8``); CMYK, YCbCr, LAB,
    HSV, 1, L, P and RGBX use Pillow's own conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_high_depth_to_uint8(np.asarray(image), mode)).convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` (EXIF orientation applied) as 8-bit RGB; an unreadable file is a one-line TransferlabError."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise TransferlabError(f"cannot read image {path}: {one_line(error)}; delete or replace it, "
                               f"or set data.on_corrupt=skip") from error


def image_problem(path: str) -> str | None:
    """Why ``path`` is not a usable image (empty, undecodable, truncated, decompression bomb), or None."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and image.width * image.height > limit:
                return f"decompression bomb: {image.width}x{image.height} px > PIL.Image.MAX_IMAGE_PIXELS={limit}"
            if image.format == "JPEG":
                image.draft(None, (1, 1))  # decode at 1/8 scale: still reads the whole stream, so catches truncation
            image.load()
    except Image.DecompressionBombError as error:
        return f"decompression bomb: {one_line(error)}"
    except Exception as error:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, struct.error, ...)
        return one_line(error)
    return None


def find_unreadable(paths: Sequence[str]) -> list[tuple[str, str]]:
    """``(path, reason)`` for each file in ``paths`` that does not fully decode, checked in parallel threads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # image_problem reports those itself
        with ThreadPoolExecutor() as pool:
            reasons = list(pool.map(image_problem, paths))
    return [(path, reason) for path, reason in zip(paths, reasons) if reason]


def list_class_folders(directory: Path) -> list[str]:
    """Sorted names of the class subfolders of ``directory``: hidden ('.'-prefixed) and ``IGNORED_FOLDERS`` skipped."""
    try:
        with os.scandir(directory) as entries:
            return sorted(e.name for e in entries
                          if e.is_dir() and not e.name.startswith(".") and e.name not in IGNORED_FOLDERS)
    except OSError as error:
        raise TransferlabError(f"cannot list folder {directory}: {one_line(error)}") from error


def find_image_files(directory: str, extensions: Sequence[str], ancestors: Sequence[str] = ()) -> list[str]:
    """Image files under ``directory``, recursively and following symlinks, hidden entries skipped.

    Unlike ``os.walk(followlinks=True)``, a folder whose real path is one of its own ancestors (a symlink loop)
    is an error instead of a walk that repeats the same files until the OS gives up.
    """
    extensions = tuple(e.lower() for e in extensions)
    found, stack = [], [(directory, (*ancestors, os.path.realpath(directory)))]
    while stack:
        current, chain = stack.pop()
        try:
            with os.scandir(current) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as error:
            raise TransferlabError(f"cannot list folder {current}: {one_line(error)}") from error
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                real = os.path.realpath(entry.path)
                if real in chain:
                    raise TransferlabError(f"symlink loop: {entry.path} points back to its ancestor {real}; "
                                           f"remove or replace that link")
                stack.append((entry.path, (*chain, real)))
            elif entry.is_file() and entry.name.lower().endswith(extensions):
                found.append(entry.path)
    return sorted(found)


class ImageFolderDataset(DatasetFolder):
    """torchvision's ``DatasetFolder`` over one split folder, with hidden folders skipped, symlink loops caught,
    empty classes rejected and every image mode loaded as RGB by ``load_rgb``.

    Args:
        root: folder of class subfolders.
        transform: applied to each RGB PIL image.
    """

    def __init__(self, root: str | os.PathLike, transform=None):
        super().__init__(str(root), loader=load_rgb, extensions=IMG_EXTENSIONS, transform=transform,
                         allow_empty=False)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = list_class_folders(Path(directory))
        if not classes:
            raise TransferlabError(f"no class folders in {directory}; put the images in one subfolder per class, "
                                   f"e.g. {Path(directory) / 'cat' / '1.jpg'}")
        return classes, {name: i for i, name in enumerate(classes)}

    @staticmethod
    def make_dataset(directory: str, class_to_idx: dict[str, int], extensions=None, is_valid_file=None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        root_chain = (os.path.realpath(directory),)
        samples = []
        for name in sorted(class_to_idx):
            class_dir = os.path.join(directory, name)
            files = find_image_files(class_dir, extensions or IMG_EXTENSIONS, root_chain)
            if not files and not allow_empty:
                raise TransferlabError(f"class folder {class_dir} has no images ({' '.join(IMG_EXTENSIONS)}); "
                                       f"add images to it or remove it")
            samples += [(path, class_to_idx[name]) for path in files]
        return samples

    def keep(self, indices: Sequence[int], transform=None) -> ImageFolderDataset:
        """A shallow copy holding only ``samples[indices]``, with its own ``transform``."""
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in indices]
        part.targets = [label for _, label in part.samples]
        part.imgs = part.samples
        part.transform, part.transforms = transform, StandardTransform(transform)
        return part


class ImageFolderDataModule(TransferDataModule):
    """Images in ``root/<class>/...``, or in ``root/train/<class>/...`` with optional ``val/`` and ``test/``.

    Without a ``train/`` subfolder, ``root`` is split into train/val/test by stratified fractions seeded by
    ``split_seed``. With one, missing ``val/`` or ``test/`` splits are held out of ``train/`` the same way. Class
    names are read in ``__init__`` and must be identical across split folders. All files are decoded once in
    ``setup``; unreadable ones (empty, truncated, garbage, decompression bombs) are an error listing them, or are
    skipped with a counted warning.

    Args:
        root: dataset folder.
        val_fraction: share of the images (of ``root``, or of ``train/``) held out for validation when no ``val/``.
        test_fraction: share held out for testing when there is no ``test/``.
        samples_per_class: keep only this many training images per class (few-shot); ``None`` keeps all.
        val_samples_per_class: keep only this many validation images per class (a few-shot run's selection then
            sees no more labels than its training); ``None`` keeps all.
        crop_scale: area range of the training random-resized crop.
        hflip: random horizontal flips in training.
        on_corrupt: ``"error"`` (stop, listing the bad files) or ``"skip"`` (drop them with a warning).
        labels_csv: a labels file (``transferlab.data.labels_csv``): images anywhere under ``root``, one column per
            task, multi-task batches; its ``split`` column or the fractions make the splits (no class folders).
        **kwargs: see ``TransferDataModule``; without ``labels_csv``, ``tasks=[class]`` gives multi-task batches
            of the folder label; with it, ``tasks`` picks columns (default: all) and may set their ``kind``
            and ``num_classes``.
    """

    def __init__(self, root: str | os.PathLike, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 samples_per_class: int | None = None, crop_scale=(0.08, 1.0), hflip: bool = True,
                 on_corrupt: str = "error", labels_csv: str | os.PathLike | None = None,
                 val_samples_per_class: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if on_corrupt not in ON_CORRUPT:
            raise TransferlabError(f"data.on_corrupt={on_corrupt!r} must be one of {', '.join(ON_CORRUPT)}")
        if not root:
            raise TransferlabError("data.root is not set; set data.root to a folder of class subfolders")
        self.root = Path(os.path.expanduser(str(root)))
        if not self.root.is_dir():
            problem = "is not a folder" if self.root.exists() else "does not exist"
            raise TransferlabError(f"data.root={root} {problem}; set data.root to a folder of class subfolders")
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.samples_per_class, self.crop_scale, self.hflip = samples_per_class, tuple(crop_scale), bool(hflip)
        self.on_corrupt, self.val_samples_per_class = on_corrupt, val_samples_per_class
        self.labels_table = LabelsTable(labels_csv, self.root, self.task_entries) if labels_csv else None
        self.split_dirs = self._find_split_dirs() if labels_csv is None else {"train": self.root}
        self.class_names = self._read_class_names() if labels_csv is None else []

    @property
    def tasks(self) -> dict[str, dict] | None:
        return self.labels_table.tasks if self.labels_table is not None else super().tasks

    def _find_split_dirs(self) -> dict[str, Path]:
        if not (self.root / "train").is_dir():
            return {"train": self.root}
        return {split: self.root / split for split in ("train", "val", "test") if (self.root / split).is_dir()}

    def _read_class_names(self) -> list[str]:
        names = self._class_folders()
        if len(names) == 1:
            raise TransferlabError(f"data.root={self.root} has one class folder ({names[0]}); classification needs at "
                                   f"least 2: add a folder per class")
        return names

    def _class_folders(self) -> list[str]:
        names = {}
        for split, directory in self.split_dirs.items():
            names[split] = list_class_folders(directory)
            if not names[split]:
                raise TransferlabError(f"no class folders in {directory}; put the images in one subfolder per "
                                       f"class, e.g. {directory / 'cat' / '1.jpg'}")
        for split in ("val", "test"):
            if split in names and names[split] != names["train"]:
                only_train = sorted(set(names["train"]) - set(names[split]))
                only_other = sorted(set(names[split]) - set(names["train"]))
                raise TransferlabError(
                    f"class folders differ between {self.split_dirs['train']} and {self.split_dirs[split]}: "
                    f"only in train: {only_train or 'none'}, only in {split}: {only_other or 'none'}; "
                    f"give both the same class subfolders")
        return names["train"]

    def _hold_out(self, labels: np.ndarray, pool: np.ndarray, fraction: float, split: str):
        counts = np.bincount(labels[pool], minlength=len(self.class_names))
        scarce = [f"{self.class_names[c]} ({counts[c]})" for c in np.flatnonzero(counts < 2)]
        if scarce:
            raise TransferlabError(f"cannot hold out a stratified {split} split of {self.split_dirs['train']}: class "
                                   f"folder(s) {', '.join(scarce)} have fewer than 2 images; add images, or "
                                   f"provide a {split}/ folder")
        try:
            kept, held = stratified_split(labels[pool], fraction, self.split_seed)
        except ValueError as error:
            raise TransferlabError(
                f"cannot hold out {fraction:.0%} of the {len(pool)} images in {self.split_dirs['train']} as a "
                f"stratified {split} split ({one_line(error)}); add images, change data.{split}_fraction, "
                f"or provide a {split}/ folder") from error
        return pool[kept], pool[held]

    def _unreadable(self, paths: Sequence[str]) -> set[str]:
        """The paths that do not decode: an error listing them, or (``on_corrupt=skip``) a warning."""
        bad = find_unreadable(paths)
        if not bad:
            return set()
        listed = ", ".join(f"{path} ({reason})" for path, reason in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        if self.on_corrupt == "error":
            raise TransferlabError(f"{len(bad)} unreadable image(s) under {self.root}: {listed}{more}; "
                                   f"delete or replace them, or set data.on_corrupt=skip")
        log.warning("skipping %d unreadable image(s) under %s: %s%s", len(bad), self.root, listed, more)
        if self.trainer is not None:  # the full list, in the run folder
            listing = Path(self.trainer.default_root_dir) / "skipped_images.txt"
            write_text(listing, "".join(f"{path}\t{reason}\n" for path, reason in bad))
        return {path for path, _ in bad}

    def _drop_unreadable(self, folders: dict[str, ImageFolderDataset]) -> None:
        bad_paths = self._unreadable([path for folder in folders.values() for path, _ in folder.samples])
        if not bad_paths:
            return
        for split, folder in folders.items():
            kept = [i for i, (path, _) in enumerate(folder.samples) if path not in bad_paths]
            folders[split] = folder.keep(kept)
            empty = sorted(set(self.class_names) - {self.class_names[label] for _, label in folders[split].samples})
            if empty:
                raise TransferlabError(f"class folder(s) {empty} in {self.split_dirs[split]} have no readable images "
                                       f"left after skipping unreadable ones; add images")

    def _setup_from_labels(self) -> None:
        table = self.labels_table
        bad = self._unreadable(table.paths)
        parts = table.split_indices(self.val_fraction, self.test_fraction, self.split_seed)
        evaluation = eval_transform(self.data_config, self.image_size)
        training = train_transform(self.data_config, self.image_size, self.crop_scale, self.hflip)
        for split, rows in parts.items():
            rows = [r for r in rows if table.paths[r] not in bad]
            images = ImageFiles([table.paths[r] for r in rows], load_rgb, training if split == "train" else evaluation)
            setattr(self, f"{split}_set", TaskLabels(images, {name: v[rows] for name, v in table.labels.items()}))

    def make_splits(self, stage: str | None = None) -> None:
        if self.labels_table is not None:
            return self._setup_from_labels()
        if "val" not in self.split_dirs and "test" not in self.split_dirs \
                and not self.val_fraction + self.test_fraction < 1:
            raise TransferlabError(f"data.val_fraction + data.test_fraction = "
                                   f"{self.val_fraction + self.test_fraction} must be below 1")
        folders = {split: ImageFolderDataset(directory) for split, directory in self.split_dirs.items()}
        self._drop_unreadable(folders)
        train = folders["train"]
        labels = np.asarray(train.targets)
        pool = np.arange(len(labels))
        if "test" in folders:
            test = folders["test"]
        else:
            pool, held = self._hold_out(labels, pool, self.test_fraction, "test")
            test = train.keep(held)
        if "val" in folders:
            val = folders["val"]
        else:  # val_fraction is a share of the whole folder, also when test was held out of it first
            share = self.val_fraction * len(labels) / len(pool)
            pool, held = self._hold_out(labels, pool, share, "val")
            val = train.keep(held)
        pool = few_shot(pool, labels, self.samples_per_class, self.split_seed)
        val = val.keep(few_shot(np.arange(len(val)), np.asarray(val.targets), self.val_samples_per_class,
                                self.split_seed + 1))
        evaluation = eval_transform(self.data_config, self.image_size)
        self.val_set = self.with_tasks(val.keep(range(len(val)), evaluation), val.targets)
        self.test_set = self.with_tasks(test.keep(range(len(test)), evaluation), test.targets)
        self.train_set = self.with_tasks(train.keep(pool, train_transform(self.data_config, self.image_size,
                                                                          self.crop_scale, self.hflip)),
                                         labels[pool])
