"""Losses strategies add: domain-adversarial (DANN), conditional (CDAN+E), class confusion (MCC), per task."""

from transferlab.losses.adversarial import DomainAdversarialLoss
from transferlab.losses.class_confusion import MinimumClassConfusionLoss
from transferlab.losses.conditional import ConditionalDomainAdversarialLoss, MultilinearMap, RandomizedMultilinearMap
from transferlab.losses.tasks import TaskLoss

__all__ = ["ConditionalDomainAdversarialLoss", "DomainAdversarialLoss", "MinimumClassConfusionLoss", "MultilinearMap",
           "RandomizedMultilinearMap", "TaskLoss"]
