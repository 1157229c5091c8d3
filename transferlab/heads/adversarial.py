"""DANN's gradient reversal layer, its coefficient schedule and the domain discriminator (Ganin et al. 2015, 2016)."""

from __future__ import annotations

import math

import torch
from torch import nn


class GradientReverse(torch.autograd.Function):
    """Identity forward; the gradient times ``-coeff`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """``x`` unchanged, with its gradient multiplied by ``-coeff``."""
    return GradientReverse.apply(x, coeff)


class GradientReversal(nn.Module):
    """Module form of ``grad_reverse``. It holds no state: the caller passes the coefficient of the current step.

    Example:
        >>> grl = GradientReversal()
        >>> y = grl(features, coeff=dann_lambda(step / total))  # doctest: +SKIP
    """

    def forward(self, x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        return grad_reverse(x, coeff)


def dann_lambda(progress: float, gamma: float = 10.0, max_value: float = 1.0) -> float:
    """The GRL coefficient ``max_value * (2 / (1 + exp(-gamma * p)) - 1)`` at training progress ``p`` in [0, 1]."""
    progress = min(max(float(progress), 0.0), 1.0)
    return max_value * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


def build_discriminator(in_features: int, hidden: int = 1024, dropout: float = 0.0) -> nn.Sequential:
    """TLlib's domain discriminator: (Linear-BN-ReLU[-Dropout]) x 2, then Linear to one logit (target = 1).

    ``dropout > 0`` is the variant for a discriminator that overpowers the feature extractor. The output is a logit:
    train it with ``binary_cross_entropy_with_logits``, which is safe under autocast (sigmoid + BCE is not).
    """
    layers, width = [], in_features
    for _ in range(2):
        layers += [nn.Linear(width, int(hidden)), nn.BatchNorm1d(int(hidden)), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(hidden)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def build_bottleneck(in_features: int, width: int) -> nn.Sequential:
    """Linear-BN-ReLU from the backbone features to ``width`` (DANN's bottleneck); identity when ``width`` is 0."""
    if not width:
        return nn.Sequential()
    return nn.Sequential(nn.Linear(in_features, int(width)), nn.BatchNorm1d(int(width)), nn.ReLU(inplace=True))
