"""A dataset that yields ``(image, {task: label})`` for multi-task training (see ``transferlab.contracts.tasks``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import Dataset


class TaskLabels(Dataset):
    """``(image, {task: label})`` from a dataset of ``(image, anything)`` and a table of per-task labels.

    Args:
        dataset: yields ``(image, _)``; its own label is ignored.
        labels: ``{task: tensor}`` whose first dimension is ``len(dataset)``.
    """

    def __init__(self, dataset: Dataset, labels: Mapping[str, torch.Tensor]):
        self.dataset, self.labels = dataset, dict(labels)
        wrong = {name: len(v) for name, v in self.labels.items() if len(v) != len(dataset)}
        if wrong:
            raise ValueError(f"label tables {wrong} do not match the {len(dataset)} images")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image = self.dataset[i][0]
        return image, {name: values[i] for name, values in self.labels.items()}
