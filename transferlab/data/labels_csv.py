"""Labels files: one row per image (path relative to the data root), one column per task, empty cell = missing.

Example ``labels.csv`` (``split`` is optional: without it the rows are split by seeded fractions)::

    path,diagnosis,scanner,age,split
    ct/0001.png,1,0,63.5,train
    ct/0002.png,0,,71,train
    ct/0003.png,,2,,val

A ``multiclass`` cell is a class index ``0..num_classes-1``; a ``regression`` cell a number; a ``multilabel`` cell
the positive class indices joined by ``;`` (``-`` for none).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlab.contracts.errors import TransferlabError
from transferlab.contracts.tasks import task_info

SPLITS = ("train", "val", "test")


class LabelsTable:
    """A parsed labels file.

    Attributes:
        paths: absolute image paths, in file order.
        labels: ``{task: tensor}`` (long ``-1`` or float ``NaN`` where missing).
        tasks: ``{task: {num_classes, class_names, kind}}``.
        splits: the ``split`` column (``train``/``val``/``test``) per row, or None without one.
    """

    def __init__(self, csv_path: str | os.PathLike, root: str | os.PathLike, tasks: Sequence[Mapping] | None = None):
        self.csv_path, self.root = Path(csv_path).expanduser(), Path(root)
        if not self.csv_path.is_file():
            raise TransferlabError(f"data.labels_csv={csv_path} does not exist")
        with open(self.csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows or len(rows[0]) < 2:
            raise TransferlabError(f"{self.csv_path}: needs a header row: path, then one column per task")
        header, body = [h.strip() for h in rows[0]], rows[1:]
        columns = [h for h in header[1:] if h != "split"]
        specs = {t["name"]: t for t in tasks} if tasks else {name: {"name": name} for name in columns}
        absent = [name for name in specs if name not in columns]
        if absent:
            raise TransferlabError(f"{self.csv_path}: no column for task(s) {absent}; its columns are {columns}")
        self.paths = self._read_paths(body, len(header))
        self.labels, self.tasks = {}, {}
        for name, spec in specs.items():
            cells = [(line, row[header.index(name)].strip()) for line, row in enumerate(body, start=2)]
            self.labels[name], self.tasks[name] = self._parse_column(name, spec, cells)
        self.splits = None
        if "split" in header:
            self.splits = [row[header.index("split")].strip() for row in body]
            bad = next(((i, s) for i, s in enumerate(self.splits) if s not in SPLITS), None)
            if bad:
                raise TransferlabError(f"{self.csv_path}: row {bad[0] + 2}: split {bad[1]!r} must be one of {SPLITS}")

    def _read_paths(self, body: list[list[str]], width: int) -> list[str]:
        paths, seen = [], {}
        for line, row in enumerate(body, start=2):
            if len(row) != width:
                raise TransferlabError(f"{self.csv_path}: row {line} has {len(row)} cells, the header {width}")
            relative = row[0].strip()
            if relative in seen:
                raise TransferlabError(f"{self.csv_path}: row {line}: {relative} is listed twice (also row "
                                       f"{seen[relative]}); keep one row per image")
            seen[relative] = line
            path = self.root / relative
            if not relative or not path.is_file():
                raise TransferlabError(f"{self.csv_path}: row {line}: image {relative!r} not found under {self.root}")
            paths.append(str(path))
        if not paths:
            raise TransferlabError(f"{self.csv_path}: has no rows")
        return paths

    def _parse_column(self, name: str, spec: Mapping, cells: list[tuple[int, str]]) -> tuple[torch.Tensor, dict]:
        kind, declared = spec.get("kind") or "multiclass", spec.get("num_classes")
        if kind == "regression":
            values = [self._number(name, line, cell, float) if cell else math.nan for line, cell in cells]
            return torch.tensor(values, dtype=torch.float32), task_info(declared or 1, spec.get("class_names"), kind)
        if kind == "multilabel":
            sets = [None if not cell else [] if cell == "-" else
                    [self._number(name, line, c, int) for c in cell.split(";")] for line, cell in cells]
        else:
            sets = [[self._number(name, line, cell, int)] if cell else None for line, cell in cells]
        found = max((max(s) for s in sets if s), default=0) + 1
        num_classes = int(declared) if declared is not None else max(found, 2 if kind == "multiclass" else 1)
        for (line, cell), labels in zip(cells, sets):
            if labels and (max(labels) >= num_classes or min(labels) < 0):
                raise TransferlabError(f"{self.csv_path}: row {line}, column {name}: label {cell} is outside "
                                       f"0..{num_classes - 1} (num_classes={num_classes})")
        info = task_info(num_classes, spec.get("class_names"), kind)
        if kind == "multiclass":
            return torch.tensor([s[0] if s else -1 for s in sets], dtype=torch.long), info
        table = torch.full((len(sets), num_classes), math.nan)
        for i, labels in enumerate(sets):
            if labels is not None:
                table[i] = 0.0
                table[i, labels] = 1.0
        return table, info

    def _number(self, name: str, line: int, cell: str, kind: type):
        try:
            return kind(cell)
        except ValueError:
            expected = "a class index" if kind is int else "a number"
            raise TransferlabError(f"{self.csv_path}: row {line}, column {name}: {cell!r} is not {expected} "
                                   f"(leave the cell empty for a missing label)") from None

    def split_indices(self, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
        """Row indices of each split: from the ``split`` column, else a seeded shuffle cut by the fractions."""
        if self.splits is not None:
            chosen = {s: np.flatnonzero(np.asarray(self.splits) == s) for s in SPLITS}
        else:
            order = np.random.default_rng(seed).permutation(len(self.paths))
            n_test, n_val = round(test_fraction * len(order)), round(val_fraction * len(order))
            chosen = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        empty = [s for s, rows in chosen.items() if len(rows) == 0]
        if empty:
            raise TransferlabError(f"{self.csv_path}: no rows for split(s) {empty}; add rows or change the fractions")
        return {s: np.sort(rows) for s, rows in chosen.items()}


class ImageFiles(Dataset):
    """Images from a list of paths, decoded by ``loader``; yields ``(image, index)``."""

    def __init__(self, paths: Sequence[str], loader, transform=None):
        self.paths, self.loader, self.transform = list(paths), loader, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = self.loader(self.paths[i])
        return (self.transform(image) if self.transform else image), i
