"""Small real-format datasets on disk for tests: a fake CIFAR-10 and image trees of every Pillow mode."""

from __future__ import annotations

import hashlib
import pickle
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
# Modes a PNG cannot hold go to JPEG and vice versa.
JPEG_ONLY, PNG_ONLY = {"CMYK"}, {"LA", "P", "RGBA", "I;16"}


def class_pattern(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size, 3)`` uint8 RGB image a classifier can tell apart by class: stripes whose direction,
    period and colour depend on ``label``, plus a little noise."""
    period = 4 + 2 * (label % 5)
    coords = np.arange(size)
    stripes = ((coords[:, None] if label % 2 else coords[None, :]) // (period // 2)) % 2
    stripes = np.broadcast_to(stripes, (size, size))
    colour = np.array([(60 + 45 * label) % 256, (200 - 35 * label) % 256, (100 + 80 * label) % 256])
    image = stripes[..., None] * colour + (1 - stripes[..., None]) * (255 - colour)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def _cifar_batch(labels: list[int], name: str, rng: np.random.Generator) -> dict:
    images = np.stack([class_pattern(label, 32, rng) for label in labels])  # (N, 32, 32, 3)
    data = images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)  # row-major R, G, B planes, as the real files
    return {"batch_label": name, "labels": list(labels), "data": np.ascontiguousarray(data, dtype=np.uint8),
            "filenames": [f"fake_{name.replace(' ', '_')}_{i}.png" for i in range(len(labels))]}


def make_fake_cifar10(root: str | Path, per_batch: int = 20, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``<root>/cifar-10-batches-py`` with the real file names and pickle layout; returns that folder.

    Same keys and dtypes as the real files read with ``pickle.load(f, encoding="latin1")``: batches hold
    ``data`` (uint8 ``(N, 3072)``), ``labels``, ``batch_label`` and ``filenames``; ``batches.meta`` holds
    ``label_names``, ``num_cases_per_batch`` and ``num_vis``. Labels cycle through all 10 classes (shuffled).
    """
    folder = Path(root) / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": (per_batch, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = (n_test, "testing batch 1 of 1")
    for file_name, (count, batch_name) in batches.items():
        labels = rng.permutation([i % 10 for i in range(count)]).tolist()
        with open(folder / file_name, "wb") as f:
            pickle.dump(_cifar_batch(labels, batch_name, rng), f, protocol=2)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR10_CLASSES, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextmanager
def patched_cifar10_md5(root: str | Path):
    """Make torchvision's ``CIFAR10`` expect the MD5s of the fake files as they are now, so its real integrity
    check runs (and fails if a file is changed afterwards)."""
    folder = Path(root) / CIFAR10.base_folder
    train_list = [[name, _md5(folder / name)] for name, _ in CIFAR10.train_list]
    test_list = [[name, _md5(folder / name)] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": _md5(folder / CIFAR10.meta["filename"])}
    with mock.patch.object(CIFAR10, "train_list", train_list), mock.patch.object(CIFAR10, "test_list", test_list), \
            mock.patch.object(CIFAR10, "meta", meta):
        yield folder


def to_mode(rgb: np.ndarray, mode: str) -> Image.Image:
    """The RGB uint8 array as a Pillow image of ``mode`` (alpha channels are a left-to-right ramp)."""
    image = Image.fromarray(rgb, "RGB")
    alpha = Image.fromarray(np.broadcast_to(np.linspace(64, 255, rgb.shape[1]).astype(np.uint8), rgb.shape[:2]))
    if mode == "I;16":  # true 16-bit values, 257 x the 8-bit grey
        grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
        return Image.fromarray(grey)
    if mode == "LA":
        return Image.merge("LA", (image.convert("L"), alpha))
    if mode == "RGBA":
        return Image.merge("RGBA", (*image.split(), alpha))
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return image.convert(mode)


def make_image_tree(root: str | Path, classes=("cat", "dog"), per_class: int = 6, size: int = 40,
                    modes=("RGB", "L", "LA", "P", "RGBA", "CMYK", "I;16"), formats=("png", "jpg"),
                    seed: int = 0) -> Path:
    """Write ``root/<class>/<i>_<mode>.<ext>``: ``per_class`` real image files per class, cycling through
    ``modes`` and ``formats`` (CMYK always JPEG; LA, P, RGBA and I;16 always PNG), with class-dependent content.
    Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            mode = modes[i % len(modes)]
            ext = "jpg" if mode in JPEG_ONLY else "png" if mode in PNG_ONLY else formats[i % len(formats)]
            to_mode(class_pattern(label, size, rng), mode).save(root / name / f"{i}_{mode.replace(';', '')}.{ext}")
    return root
