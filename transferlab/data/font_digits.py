"""An offline synthetic-to-real domain pair: digits printed in matplotlib's bundled fonts -> scikit-learn's digits.

The source renders 0-9 in every bundled TrueType font that draws them (DejaVu, STIX, Computer Modern; symbol fonts
are skipped), white on black, with a random scale, rotation, position, stroke weight and grey level, the way
SynDigits was rendered for SVHN (Ganin & Lempitsky 2015). The target is the 1,797 real handwritten digits, labels
kept for evaluation only. Unlike ``data=digits_blend`` (the same digits over photographs: a background/texture
shift with identical shapes) this shift is in the shapes themselves -- sharp typeset glyphs against blurry 8x8
handwriting -- while backgrounds match; the two domains also differ in size (2,400 rendered against 1,797).

This pair is meant for *evaluation*: it is never used to choose recipes or hyperparameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from transferlab.contracts.errors import TransferlabError
from transferlab.data.digits import domain_splits, load_digit_images, tensor_transforms
from transferlab.data.domain_pair import DomainDataModule

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
DIGITS = "0123456789"
REFERENCE_FONT = "DejaVuSans"
MAX_STROKE = 1 / 16  # of the side: 2 pixels at 32 px


def _draw(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> Image.Image:
    """``text`` white on black, cropped to its ink (an empty 1x1 image when nothing is drawn)."""
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    image = Image.new("L", (max(right - left, 1) + 2, max(bottom - top, 1) + 2))
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    box = image.getbbox()
    return image.crop(box) if box else Image.new("L", (1, 1))


def _signature(path: Path) -> np.ndarray:
    """The font's ten digits, each cropped, padded square, 16x16 and normalised: ``(10, 256)``."""
    font, rows = ImageFont.truetype(str(path), 48), []
    for digit in DIGITS:
        glyph = _draw(font, digit)
        side = max(glyph.size)
        square = Image.new("L", (side, side))
        square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
        row = np.asarray(square.resize((16, 16), Image.BOX), dtype=np.float64).ravel()
        rows.append((row - row.mean()) / (np.linalg.norm(row - row.mean()) + 1e-9))
    return np.stack(rows)


@functools.cache
def bundled_fonts() -> tuple[Path, ...]:
    """matplotlib's bundled ``.ttf`` fonts that draw 0-9 as ten distinct glyphs resembling DejaVu Sans' digits
    (at least half nearest their own digit): symbol fonts (cmsy10, cmex10, STIXSize*, ...) and empty ones are out."""
    paths = sorted(FONT_DIR.glob("*.ttf"))
    signatures = {path: _signature(path) for path in paths}
    reference = signatures.get(FONT_DIR / f"{REFERENCE_FONT}.ttf")
    usable = [path for path, sig in signatures.items() if reference is not None and np.abs(sig).sum(1).all()
              and len({row.tobytes() for row in sig}) == 10
              and ((sig @ reference.T).argmax(1) == np.arange(10)).sum() >= 5]
    if not usable:
        raise TransferlabError(f"no font in {FONT_DIR} draws the digits 0-9; reinstall matplotlib")
    return tuple(usable)


def resolve_fonts(names: Sequence[str] | str | None) -> list[Path]:
    """Bundled font files by stem name (``None``: all usable ones)."""
    usable = {path.stem: path for path in bundled_fonts()}
    if names is None:
        return list(usable.values())
    names = [names] if isinstance(names, str) else list(names)
    unknown = [str(name) for name in names if str(name) not in usable]
    if unknown or not names:
        raise TransferlabError(f"data.fonts={names}: {'unknown ' + str(unknown) if unknown else 'empty'}; "
                               f"use null (all) or some of {', '.join(usable)}")
    return [usable[str(name)] for name in names]


@functools.lru_cache(maxsize=1024)
def _ink_height(path: Path, digit: int) -> float:
    """Ink height of ``digit`` in pixels per point of ``path``'s font."""
    return _draw(ImageFont.truetype(str(path), 100), DIGITS[digit]).height / 100


def _render_one(path: Path, digit: int, canvas: int, rng: np.random.Generator) -> Image.Image:
    """One digit white on black on a ``canvas``-pixel square: random height (55-90%), rotation (+-15 degrees),
    stroke (up to ``MAX_STROKE`` of the side) and position (+-10% around the centre). Never clipped: a glyph
    that rotates past 96% of the side is shrunk."""
    height = rng.uniform(0.55, 0.90) * canvas
    points = max(int(round(height / _ink_height(path, digit))), 1)
    stroke = int(rng.integers(0, int(MAX_STROKE * canvas) + 1))
    glyph = _draw(ImageFont.truetype(str(path), points), DIGITS[digit], stroke)
    glyph = glyph.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, expand=True)
    glyph = glyph.crop(glyph.getbbox() or (0, 0, 1, 1))
    fit = 0.96 * canvas / max(glyph.size)
    if fit < 1:
        glyph = glyph.resize((max(int(glyph.width * fit), 1), max(int(glyph.height * fit), 1)), Image.LANCZOS)
    image = Image.new("L", (canvas, canvas))
    image.paste(glyph, (_offset(canvas, glyph.width, rng), _offset(canvas, glyph.height, rng)))
    return image


def _offset(canvas: int, extent: int, rng: np.random.Generator) -> int:
    """A corner coordinate placing ``extent`` pixels near the middle of ``canvas``, jittered by up to 10% and
    kept 2% off the edges."""
    centred = (canvas - extent) / 2 + rng.uniform(-0.1, 0.1) * canvas
    return int(round(min(max(centred, 0.02 * canvas), 0.98 * canvas - extent)))


def render_font_digits(n: int, size: int, seed: int, fonts: Sequence[Path | str]) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` printed digits as uint8 RGB tensors ``(n, 3, size, size)`` and their balanced labels 0-9.

    Each is drawn in a random font of ``fonts`` at up to 4x ``size`` (see ``_render_one``), box-downsampled, and
    given a random stroke grey level (60-100% white). Deterministic for a ``seed``.
    """
    if not fonts:
        raise TransferlabError("render_font_digits: fonts is empty; pass some of bundled_fonts()")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    factor = max(1, min(4, 128 // size))
    images = np.empty((n, size, size), dtype=np.uint8)
    for i, digit in enumerate(labels):
        image = _render_one(Path(fonts[rng.integers(len(fonts))]), int(digit), size * factor, rng)
        images[i] = np.round(np.asarray(image.reduce(factor), dtype=np.float32) * rng.uniform(0.6, 1.0))
    return torch.from_numpy(images).unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), labels


class FontDigitsDataModule(DomainDataModule):
    """Source: digits printed in bundled fonts (``render_font_digits``). Target: scikit-learn's handwritten digits.

    Both domains are split stratified by ``split_seed`` with the same fractions; the source images are rendered
    with ``split_seed`` too, so another split seed also draws other images. Target labels serve evaluation only.

    Args:
        val_fraction: share of each domain for validation.
        test_fraction: share of each domain for testing.
        crop_scale: area range of the training random-resized crop.
        source_size: rendered source images (the target has 1,797).
        fonts: stem names of bundled fonts (e.g. ``DejaVuSerif``); ``None`` uses all that draw digits.
        **kwargs: see ``TransferDataModule``.
    """

    def __init__(self, val_fraction: float = 0.1, test_fraction: float = 0.2, crop_scale=(0.7, 1.0),
                 source_size: int = 2400, fonts: Sequence[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.val_fraction, self.test_fraction, self.crop_scale = val_fraction, test_fraction, tuple(crop_scale)
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise TransferlabError(f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: both must "
                                   f"be > 0 with a sum < 1")
        least = math.ceil(10 / min(val_fraction, test_fraction))
        if int(source_size) < least:
            raise TransferlabError(f"data.source_size={source_size} is too small for 10 digits per split; "
                                   f"use at least {least}")
        self.source_size, self.fonts = int(source_size), resolve_fonts(fonts)
        self.class_names = [str(d) for d in range(10)]

    def make_splits(self, stage: str | None = None) -> None:
        augment, plain = tensor_transforms(self.data_config, self.image_size, self.crop_scale)
        source = render_font_digits(self.source_size, self.image_size, self.split_seed, self.fonts)
        split = (self.val_fraction, self.test_fraction, self.split_seed, augment, plain)
        self.train_set, self.val_set, self.test_set, self.source_train_eval = domain_splits(*source, *split)
        target = load_digit_images(self.image_size)
        self.target_train, self.target_val, self.target_test, self.target_train_eval = domain_splits(*target, *split)
