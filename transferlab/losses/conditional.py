"""CDAN+E (Long et al. 2018): a discriminator conditioned on the classifier's predictions, weighted by certainty."""

from __future__ import annotations

import math

import torch
from torch import nn

from transferlab.losses.adversarial import DomainAdversarialLoss

RANDOMIZE_ABOVE = 4096  # the paper's threshold on dim(f) x classes for the randomised map


def entropy(probs: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample Shannon entropy (nats) of rows of probabilities."""
    return -(probs * torch.log(probs + eps)).sum(dim=1)


class MultilinearMap(nn.Module):
    """``f ⊗ g`` flattened: ``(N, D)``, ``(N, C)`` -> ``(N, C * D)``, row ``c * D + d`` = ``g_c f_d``."""

    def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return torch.bmm(probs.unsqueeze(2), features.unsqueeze(1)).flatten(1)


class RandomizedMultilinearMap(nn.Module):
    """``(f R_f) ⊙ (g R_g) / sqrt(out_dim)`` with fixed Gaussian ``R_f``, ``R_g``: an unbiased estimate of the
    multilinear map's inner products in ``out_dim`` dimensions. The matrices are buffers, so a checkpoint (and a
    resumed run) carries the same map, and they are drawn from ``seed`` alone.
    """

    def __init__(self, features_dim: int, num_classes: int, out_dim: int = 1024, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.out_dim = int(out_dim)
        self.register_buffer("R_f", torch.randn(features_dim, self.out_dim, generator=generator))
        self.register_buffer("R_g", torch.randn(num_classes, self.out_dim, generator=generator))

    def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return (features @ self.R_f.to(features.dtype)) * (probs @ self.R_g.to(probs.dtype)) / math.sqrt(self.out_dim)


class ConditionalDomainAdversarialLoss(DomainAdversarialLoss):
    """CDAN+E: the discriminator sees ``T(f, g)``, the (randomised) multilinear map of features ``f`` and softmax
    predictions ``g`` (detached, as in the paper's code), through the gradient reversal layer. With entropy
    conditioning each sample's domain loss is weighted by ``1 + exp(-H(g))``, normalised to mean 1 within its
    domain, so confident predictions drive the alignment; each domain counts 1/2 as in ``DomainAdversarialLoss``.

    Args:
        discriminator: ``(N, map_dim)`` -> ``(N, 1)`` logits; ``map_dim`` is ``features_dim * num_classes``, or
            ``randomized_dim`` when randomised.
        features_dim, num_classes: sizes of ``f`` and ``g``.
        entropy_conditioning: the "+E" of CDAN+E.
        randomized: use the randomised map; None (default) = only when ``features_dim * num_classes > 4096``.
        randomized_dim: output width of the randomised map.
        seed: seed of the randomised map's matrices.
    """

    def __init__(self, discriminator: nn.Module, features_dim: int, num_classes: int, entropy_conditioning: bool = True,
                 randomized: bool | None = None, randomized_dim: int = 1024, seed: int = 0):
        super().__init__(discriminator)
        if randomized is None:
            randomized = features_dim * num_classes > RANDOMIZE_ABOVE
        self.map = (RandomizedMultilinearMap(features_dim, num_classes, randomized_dim, seed) if randomized
                    else MultilinearMap())
        self.entropy_conditioning = bool(entropy_conditioning)

    @staticmethod
    def map_dim(features_dim: int, num_classes: int, randomized: bool | None = None, randomized_dim: int = 1024) -> int:
        """Width of the discriminator's input for these sizes."""
        if randomized is None:
            randomized = features_dim * num_classes > RANDOMIZE_ABOVE
        return int(randomized_dim) if randomized else features_dim * num_classes

    def forward(self, source_features: torch.Tensor, source_logits: torch.Tensor, target_features: torch.Tensor,
                target_logits: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        features = torch.cat([source_features, target_features])
        probs = torch.cat([source_logits, target_logits]).float().softmax(dim=1).detach()
        weights = None
        if self.entropy_conditioning:
            weights = 1.0 + torch.exp(-entropy(probs))
        return self.domain_bce(self.map(features, probs.to(features.dtype)), len(source_features), coeff, weights)
