"""Classifier heads (linear or MLP); DANN adds the gradient reversal layer and domain discriminator here."""

from transferlab.heads.classifier import build_head

__all__ = ["build_head"]
