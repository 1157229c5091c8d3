"""Typed checks of config values, run once at startup before any model weights or data are touched.

Each rule names a config key; keys a config does not have are skipped, so strategies and data modules with other
options (DANN, multitask) share the table and may add their own rules to ``RULES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from transferlab.contracts.errors import TransferlabError

_ABSENT = object()


def number(key: str, value) -> float:
    """``float(value)``, or a one-line error naming ``key`` when it is not a number (bools and NaN are not)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise TransferlabError(f"{key}={value!r} is not a number") from None
    if isinstance(value, bool) or math.isnan(result):
        raise TransferlabError(f"{key}={value!r} is not a number")
    return result


def check_positive(key: str, value, allow_zero: bool = False) -> float:
    """``number(value)`` that must be > 0 (or >= 0 with ``allow_zero``)."""
    result = number(key, value)
    if result < 0 or (result == 0 and not allow_zero):
        raise TransferlabError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")
    return result


def integer(minimum: int, optional: bool = False) -> Callable:
    """A rule: an integer >= ``minimum`` (or null when ``optional``)."""

    def rule(key: str, value) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TransferlabError(f"{key}={value!r} is not an integer")
        if value < minimum:
            raise TransferlabError(f"{key}={value} must be >= {minimum}")

    return rule


def interval(low: float, high: float, closed_low: bool = False, optional: bool = False) -> Callable:
    """A rule: a number in (low, high), or [low, high) when ``closed_low``."""

    def rule(key: str, value) -> None:
        if value is None and optional:
            return
        x = number(key, value)
        if not ((low <= x if closed_low else low < x) and x < high):
            raise TransferlabError(f"{key}={value} must be in {'[' if closed_low else '('}{low:g}, {high:g})")

    return rule


def _max_epochs(key: str, value) -> None:
    """At least one epoch, or -1 (until ``trainer.max_steps``): 0 would "complete" with an untrained head."""
    integer(-1)(key, value)
    if value == 0:
        raise TransferlabError(f"{key}=0 trains nothing; use {key}>=1 (or -1 with trainer.max_steps)")


def positive(allow_zero: bool = False) -> Callable:
    """A rule: a number > 0 (>= 0 with ``allow_zero``)."""
    return lambda key, value: check_positive(key, value, allow_zero=allow_zero)


def choice(*options: str) -> Callable:
    """A rule: one of ``options``."""

    def rule(key: str, value) -> None:
        if value not in options:
            raise TransferlabError(f"{key}={value!r} must be one of {', '.join(options)}")

    return rule


RULES: dict[str, Callable] = {
    "seed": integer(0, optional=True),
    "optimizer.lr": positive(),
    "optimizer.weight_decay": positive(allow_zero=True),
    "optimizer.momentum": interval(0, 1, closed_low=True),
    "data.batch_size": integer(1),
    "data.num_workers": integer(0),
    "data.image_size": integer(8, optional=True),
    "data.val_fraction": interval(0, 1),
    "data.test_fraction": interval(0, 1),
    "data.samples_per_class": integer(1, optional=True),
    "data.validator_samples": integer(2),
    "trainer.max_epochs": lambda key, value: _max_epochs(key, value),
    "strategy.freeze_depth": integer(0),
    "strategy.unfreeze_step": integer(1),
    "strategy.head_dropout": interval(0, 1, closed_low=True),
    "strategy.label_smoothing": interval(0, 1, closed_low=True),
    "strategy.backbone_lr_mult": positive(allow_zero=True),
    "strategy.layer_decay": positive(),
    "strategy.bottleneck_dim": integer(0),
    "strategy.domain_weight": positive(allow_zero=True),
    "strategy.lambda_schedule": choice("dann", "constant"),
    "strategy.gamma": positive(),
    "strategy.lambda_max": positive(allow_zero=True),
    "strategy.discriminator_hidden": integer(1),
    "strategy.discriminator_dropout": interval(0, 1, closed_low=True),
    "strategy.snd_temperature": positive(),
    "strategy.randomized_dim": integer(1),
    "strategy.mcc_weight": positive(allow_zero=True),
    "strategy.temperature": positive(),
    "strategy.weighting": choice("fixed", "uncertainty"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise a one-line TransferlabError for the first value in ``cfg`` that breaks its rule in ``RULES``."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT:
            rule(key, value)


def check_freeze_depth(depth: int, num_stages: int, network: str, key: str = "strategy.freeze_depth") -> None:
    """``depth`` must count stages the network has: 0..num_stages (the one place this is checked)."""
    if not 0 <= int(depth) <= num_stages:
        raise TransferlabError(f"{key}={depth} is out of range: {network} has {num_stages} stages "
                               f"(use 0..{num_stages})")
