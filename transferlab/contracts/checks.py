"""Typed checks of config values, run once at startup before any model weights or data are touched.

Each rule names a config key; keys a config does not have are skipped, so strategies and data modules with other
options (DANN, multitask) share the table and may add their own rules to ``RULES``. ``check_options`` refuses a key
that a config's ``_target_`` does not take (``+optimizer.lrr=0.1``), with the nearest option as a hint.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable

import hydra
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


def boolean(key: str, value) -> None:
    """A rule: true or false."""
    if not isinstance(value, bool):
        raise TransferlabError(f"{key}={value!r} must be true or false")


def choice(*options: str) -> Callable:
    """A rule: one of ``options``."""

    def rule(key: str, value) -> None:
        if value not in options:
            raise TransferlabError(f"{key}={value!r} must be one of {', '.join(options)}")

    return rule


RULES: dict[str, Callable] = {
    "seed": integer(0, optional=True),
    "threads": integer(1, optional=True),
    "test": boolean,
    "sweep_resume": boolean,
    "channels_last": boolean,
    "compile": boolean,
    "optimizer.lr": positive(),
    "optimizer.weight_decay": positive(allow_zero=True),
    "optimizer.momentum": interval(0, 1, closed_low=True),
    "data.batch_size": integer(1),
    "data.num_workers": integer(0),
    "data.image_size": integer(8, optional=True),
    "data.val_fraction": interval(0, 1),
    "data.test_fraction": interval(0, 1),
    "data.samples_per_class": integer(1, optional=True),
    "data.val_samples_per_class": integer(1, optional=True),
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


# --- keys a config sets that its _target_ does not take (+optimizer.lrr=0.1) ------------------------------------
def option_error(cfg: DictConfig, key: str) -> TransferlabError:
    """``<group>.<key> is not an option of <target>``, with the closest option when one is near."""
    prefix = f"{cfg._get_full_key(None)}." if cfg._get_full_key(None) else ""
    close = difflib.get_close_matches(key, known_options(cfg._target_), n=1)
    hint = f"; did you mean {prefix}{close[0]}?" if close else ""
    return TransferlabError(f"{prefix}{key} is not an option of {cfg._target_} (remove it, or check its "
                            f"spelling){hint}")


def target_options(target: str) -> list[str] | None:
    """The keyword parameters of ``target``; None when it takes ``**kwargs`` or has no signature to read."""
    try:
        parameters = inspect.signature(hydra.utils.get_object(target)).parameters.values()
    except Exception:  # no readable signature (a builtin, a policy refusal): Hydra's own call will say what is wrong
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def known_options(target: str) -> list[str]:
    """Every keyword a class target's ``__init__`` chain names (for spelling hints), or a function's parameters."""
    try:
        obj = hydra.utils.get_object(target)
        functions = [c.__dict__["__init__"] for c in inspect.getmro(obj) if "__init__" in c.__dict__] \
            if inspect.isclass(obj) else [obj]
        return [name for function in functions for name, p in inspect.signature(function).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"]
    except Exception:  # no readable signature: no hint
        return []


def check_options(cfg) -> None:
    """Every key of ``cfg`` (and of the configs nested in it) is a parameter of its ``_target_``; targets taking
    ``**kwargs`` are checked when called (``unknown_option``)."""
    if OmegaConf.is_list(cfg):
        keys = range(len(cfg))
    elif OmegaConf.is_dict(cfg):
        keys = [key for key in cfg if not str(key).startswith("_")]
    else:
        return
    if OmegaConf.is_dict(cfg) and "_target_" in cfg:
        options = target_options(cfg._target_)
        for key in keys if options is not None else ():
            if key not in options:
                raise option_error(cfg, str(key))
        if cfg.get("_recursive_", True) is False:
            return
    for key in keys:  # nodes, not values: nothing is resolved here
        if OmegaConf.is_config(cfg._get_node(key)):
            check_options(cfg._get_node(key))


UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def unknown_option(err: BaseException, cfg: DictConfig) -> TransferlabError | None:
    """The one-line error for a ``TypeError`` (maybe wrapped by Hydra) about a key ``cfg`` sets; else None."""
    while err is not None:
        match = UNEXPECTED.search(str(err)) if isinstance(err, TypeError) else None
        if match and match.group(1) in cfg:
            return option_error(cfg, match.group(1))
        err = err.__cause__ or err.__context__
    return None
