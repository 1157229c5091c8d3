"""Linear and MLP classifier heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from transferlab.contracts.errors import TransferlabError


def build_head(in_features: int, num_classes: int, hidden: Sequence[int] = (), dropout: float = 0.0) -> nn.Sequential:
    """A linear head, or an MLP when ``hidden`` lists layer widths.

    Each hidden layer is Linear -> ReLU -> Dropout(``dropout``); a linear head gets the dropout before its Linear.

    Example:
        >>> build_head(2048, 2, hidden=[512], dropout=0.5)  # seed 001's head
        Sequential(
          (0): Linear(in_features=2048, out_features=512, bias=True)
          (1): ReLU(inplace=True)
          (2): Dropout(p=0.5, inplace=False)
          (3): Linear(in_features=512, out_features=2, bias=True)
        )
    """
    if num_classes < 1:
        raise TransferlabError(f"num_classes={num_classes} must be >= 1")
    layers, width = [], in_features
    for size in hidden or ():
        layers += [nn.Linear(width, int(size)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = int(size)
    if not hidden and dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
