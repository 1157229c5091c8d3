"""Classifier heads (linear or MLP), DANN's gradient reversal layer, bottleneck and domain discriminator."""

from transferlab.heads.adversarial import (
    GradientReversal,
    build_bottleneck,
    build_discriminator,
    dann_lambda,
    grad_reverse,
)
from transferlab.heads.classifier import build_head

__all__ = ["GradientReversal", "build_bottleneck", "build_discriminator", "build_head", "dann_lambda", "grad_reverse"]
