"""Losses strategies add to cross-entropy: domain-adversarial (DANN), conditional (CDAN+E), class confusion (MCC)."""

from transferlab.losses.adversarial import DomainAdversarialLoss
from transferlab.losses.class_confusion import MinimumClassConfusionLoss
from transferlab.losses.conditional import ConditionalDomainAdversarialLoss, MultilinearMap, RandomizedMultilinearMap

__all__ = ["ConditionalDomainAdversarialLoss", "DomainAdversarialLoss", "MinimumClassConfusionLoss", "MultilinearMap",
           "RandomizedMultilinearMap"]
