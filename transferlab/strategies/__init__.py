"""Strategies: one LightningModule each, on the shared ``TransferModule`` base."""

from transferlab.strategies.base import TransferModule
from transferlab.strategies.dann import DANN
from transferlab.strategies.finetune import Finetune
from transferlab.strategies.linear_probe import LinearProbe
from transferlab.strategies.multitask import Multitask

__all__ = ["DANN", "Finetune", "LinearProbe", "Multitask", "TransferModule"]
