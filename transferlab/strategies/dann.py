"""Domain-adversarial training (DANN, Ganin et al. 2015, 2016), its source-only baseline, and CDAN+E
(Long et al. 2018), which conditions the same adversarial game on the classifier's predictions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torchmetrics.classification import BinaryAccuracy

from transferlab.backbones import Backbone
from transferlab.contracts.errors import TransferlabError
from transferlab.heads import build_discriminator, dann_lambda
from transferlab.losses import ConditionalDomainAdversarialLoss, DomainAdversarialLoss
from transferlab.strategies.domain_adaptation import DomainAdaptation


class DANN(DomainAdaptation):
    """Bottleneck features -> gradient reversal -> domain discriminator (``DomainAdversarialLoss``).

    Loss = source cross-entropy + ``domain_weight`` x domain BCE (source 0, target 1, each domain weighted 1/2).
    The GRL coefficient is ``lambda_max * (2 / (1 + exp(-gamma p)) - 1)`` with ``p = global_step / total steps``
    (``trainer.estimated_stepping_batches``): derived from the trainer, so it is right after a resume and under DDP.
    ``domain_weight=0`` is the source-only baseline (``strategy=source_only``; with ``target_bn``,
    ``strategy=adabn``). Logs ``domain/loss``, ``domain/acc`` and ``dann/lambda``.

    Args:
        backbone, num_classes, optimizer, scheduler: see ``TransferModule``.
        domain_weight: weight of the domain loss (0 = source only).
        lambda_schedule: ``"dann"`` (the schedule above) or ``"constant"`` (``lambda_max`` throughout).
        gamma: steepness of the schedule.
        lambda_max: final (or constant) GRL coefficient.
        discriminator_hidden: width of the discriminator's two hidden layers.
        discriminator_dropout: dropout after each hidden layer; 0.5 (with ``lambda_max=1``) had the best worst-case
            gain over source only on the development pair (``benchmarks/da_protocol.py``).
        **kwargs: see ``DomainAdaptation`` (bottleneck, BN modes, validators) and ``Finetune``.

    Example:
        ``python -m transferlab.run strategy=dann data=digits_blend``
    """

    def __init__(self, backbone: Backbone, num_classes: int, optimizer: Callable | None,
                 scheduler: Callable | None = None, domain_weight: float = 1.0, lambda_schedule: str = "dann",
                 gamma: float = 10.0, lambda_max: float = 1.0, discriminator_hidden: int = 1024,
                 discriminator_dropout: float = 0.5, **kwargs):
        kwargs.setdefault("backbone_lr_mult", 0.1)
        super().__init__(backbone, num_classes, optimizer, scheduler, adaptation_weight=domain_weight, **kwargs)
        self.domain_weight, self.lambda_schedule = float(domain_weight), lambda_schedule
        self.gamma, self.lambda_max = float(gamma), float(lambda_max)
        self.adversary = self.make_adversary(int(discriminator_hidden), float(discriminator_dropout))
        self.domain_acc = BinaryAccuracy()

    def make_adversary(self, hidden: int, dropout: float) -> DomainAdversarialLoss:
        """The adversarial loss component: a discriminator on the bottleneck features."""
        return DomainAdversarialLoss(build_discriminator(self.features_dim, hidden, dropout))

    @property
    def discriminator(self) -> nn.Module:
        return self.adversary.discriminator

    def grl_coeff(self) -> float:
        """The GRL coefficient at the current global step (a pure function of trainer state)."""
        if self.lambda_schedule == "constant":
            return self.lambda_max
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise TransferlabError("the DANN lambda schedule needs a finite run: set trainer.max_epochs or "
                                   "trainer.max_steps, or strategy.lambda_schedule=constant")
        return dann_lambda(self.global_step / max(total, 1), self.gamma, self.lambda_max)

    def domain_loss(self, source: torch.Tensor, target: torch.Tensor, coeff: float,
                    source_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The adversary's loss on bottleneck features of both domains, reversed with ``coeff``."""
        return self.adversary(source, target, coeff)

    def adaptation_loss(self, source_features: torch.Tensor, source_logits: torch.Tensor,
                        target_features: torch.Tensor) -> torch.Tensor:
        coeff = self.grl_coeff()
        loss = self.domain_loss(source_features, target_features, coeff, source_logits)
        self.domain_acc.update(self.adversary.logits.sigmoid(), self.adversary.labels)
        self.log("domain/loss", loss, on_step=True, on_epoch=True)
        self.log_epoch_metric("domain/acc", self.domain_acc)
        self.log("dann/lambda", coeff, on_step=True, on_epoch=False)
        return loss


class CDAN(DANN):
    """CDAN+E: DANN whose discriminator sees the multilinear map of bottleneck features and class probabilities
    (randomised above 4,096 dimensions), each sample weighted by ``1 + exp(-entropy)``
    (``ConditionalDomainAdversarialLoss``). Same GRL schedule, logs and arguments as ``DANN``, plus:

    Args:
        entropy_conditioning: the "+E" (False = plain CDAN).
        randomized: force the randomised map on or off; None = only above 4,096 dimensions.
        randomized_dim: output width of the randomised map.
        **kwargs: see ``DANN``.

    Example:
        ``python -m transferlab.run strategy=cdan data=digits_blend``
    """

    def __init__(self, *args, entropy_conditioning: bool = True, randomized: bool | None = None,
                 randomized_dim: int = 1024, **kwargs):
        self._conditioning = (bool(entropy_conditioning), randomized, int(randomized_dim))
        super().__init__(*args, **kwargs)

    def make_adversary(self, hidden: int, dropout: float) -> ConditionalDomainAdversarialLoss:
        conditioning, randomized, randomized_dim = self._conditioning
        width = ConditionalDomainAdversarialLoss.map_dim(self.features_dim, self.num_classes, randomized,
                                                         randomized_dim)
        return ConditionalDomainAdversarialLoss(build_discriminator(width, hidden, dropout), self.features_dim,
                                                self.num_classes, conditioning, randomized, randomized_dim)

    def domain_loss(self, source: torch.Tensor, target: torch.Tensor, coeff: float,
                    source_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The conditional adversary's loss; the class predictions come from the classifier on the same features."""
        if source_logits is None:
            source_logits = self.classify(source)
        return self.adversary(source, source_logits, target, self.classify(target), coeff)
