"""Strategies: one LightningModule each, composed from a backbone, a head and the losses it adds."""

from transferlab.strategies.base import TransferModule
from transferlab.strategies.dann import CDAN, DANN
from transferlab.strategies.domain_adaptation import DomainAdaptation
from transferlab.strategies.finetune import Finetune
from transferlab.strategies.linear_probe import LinearProbe
from transferlab.strategies.mcc import MCC
from transferlab.strategies.multitask import Multitask

__all__ = ["CDAN", "DANN", "MCC", "DomainAdaptation", "Finetune", "LinearProbe", "Multitask", "TransferModule"]
