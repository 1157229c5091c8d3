"""Classifier heads (linear or MLP), DANN's gradient reversal layer, bottleneck and domain discriminator."""

from transferlab.heads.classifier import build_head
from transferlab.heads.domain import GradientReversal, build_bottleneck, build_discriminator, dann_lambda, grad_reverse

__all__ = ["GradientReversal", "build_bottleneck", "build_discriminator", "build_head", "dann_lambda", "grad_reverse"]
