"""The domain-adversarial loss of DANN (Ganin et al. 2016), a module in the manner of TLlib's dann.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.heads.adversarial import GradientReversal


def domain_labels(num_source: int, num_target: int, device: torch.device) -> torch.Tensor:
    """``0`` for each source sample, then ``1`` for each target sample."""
    return torch.cat([torch.zeros(num_source, device=device), torch.ones(num_target, device=device)])


def per_domain_mean(values: torch.Tensor, num_source: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``(mean over source + mean over target) / 2`` of per-sample ``values`` (weighted means when ``weights``),
    so each domain counts equally whatever the batch sizes."""
    if weights is None:
        weights = torch.ones_like(values)
    halves = [(values[part] * weights[part]).sum() / weights[part].sum()
              for part in (slice(None, num_source), slice(num_source, None))]
    return 0.5 * (halves[0] + halves[1])


class DomainAdversarialLoss(nn.Module):
    """Binary cross-entropy of a domain discriminator on gradient-reversed features (source 0, target 1).

    Minimising it trains the discriminator; the reversal makes the feature extractor maximise it at the same time.
    Each domain is weighted 1/2. The discriminator outputs logits (``binary_cross_entropy_with_logits`` is safe
    under autocast). After each call, ``logits`` and ``labels`` hold the detached discriminator outputs and domain
    labels, for a domain-accuracy metric.

    Args:
        discriminator: features ``(N, D)`` -> one logit per sample ``(N, 1)``.

    Example:
        >>> loss_fn = DomainAdversarialLoss(build_discriminator(256))  # doctest: +SKIP
        >>> loss = loss_fn(source_features, target_features, coeff=dann_lambda(step / total))  # doctest: +SKIP
    """

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator
        self.grl = GradientReversal()
        self.logits: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def domain_bce(self, inputs: torch.Tensor, num_source: int, coeff: float,
                   weights: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of the discriminator on ``inputs`` (source rows first), reversed with ``coeff``."""
        logits = self.discriminator(self.grl(inputs, coeff)).squeeze(1)
        labels = domain_labels(num_source, len(inputs) - num_source, logits.device)
        per_sample = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").float()
        self.logits, self.labels = logits.detach().float(), labels.long()
        return per_domain_mean(per_sample, num_source, weights)

    def forward(self, source: torch.Tensor, target: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        return self.domain_bce(torch.cat([source, target]), len(source), coeff)
