"""A grid of independent heads on the same features, trained in one pass (as DINOv2's linear evaluation does)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from transferlab.contracts.errors import TransferlabError
from transferlab.heads.classifier import build_head


def grid_settings(head_grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the listed values, e.g. ``{lr: [1e-3, 1e-2], weight_decay: [0, 1e-4]}`` -> 4 dicts."""
    unknown = set(head_grid) - {"lr", "weight_decay"}
    if unknown or not head_grid:
        raise TransferlabError(f"strategy.head_grid keys {sorted(unknown) or '{}'} are not supported; "
                               "give lists for lr and/or weight_decay")
    keys = sorted(head_grid)
    values = [[float(v) for v in (head_grid[k] if isinstance(head_grid[k], Sequence) else [head_grid[k]])]
              for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


class HeadGrid(nn.Module):
    """K heads of the same shape; ``forward`` gives the selected head's logits, ``all_logits`` every head's.

    ``selected`` is a buffer, so the head chosen on validation data travels with each checkpoint.

    Args:
        settings: one dict of optimizer settings (``lr``, ``weight_decay``) per head.
        in_features, num_classes, hidden, dropout: as ``build_head``.
    """

    def __init__(self, settings: list[dict[str, float]], in_features: int, num_classes: int,
                 hidden: Sequence[int] = (), dropout: float = 0.0):
        super().__init__()
        self.settings = settings
        self.heads = nn.ModuleList(build_head(in_features, num_classes, hidden, dropout) for _ in settings)
        self.register_buffer("selected", torch.zeros((), dtype=torch.long))

    def all_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(K, N, num_classes)`` logits of every head."""
        return torch.stack([head(features) for head in self.heads])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.heads[int(self.selected)](features)
