"""Parameter groups and learning-rate schedules shared by every strategy.

Optimizers are Hydra ``_partial_`` configs (``torch.optim.AdamW`` etc.); a strategy builds the parameter groups here
and hands them to the partial. Schedulers are partials of the builders below, called with the optimizer and the total
number of optimizer steps, and return Lightning's ``lr_scheduler`` dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, StepLR


def split_decay(named_params: Iterable[tuple[str, nn.Parameter]]) -> tuple[list, list]:
    """Split parameters into (decayed, not decayed): norms, biases and other 1-d tensors get no weight decay."""
    decay, no_decay = [], []
    for _, param in named_params:
        (no_decay if param.ndim <= 1 else decay).append(param)
    return decay, no_decay


def make_groups(name: str, named_params, lr: float, weight_decay: float) -> list[dict]:
    """One or two optimizer groups for ``named_params`` at ``lr``: with and without weight decay."""
    decay, no_decay = split_decay(named_params)
    groups = [{"name": name, "params": decay, "lr": lr, "weight_decay": weight_decay},
              {"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def stage_lrs(lr: float, num_stages: int, backbone_lr_mult: float = 1.0, layer_decay: float = 1.0) -> list[float]:
    """Learning rate of each backbone stage, stem first: ``lr * backbone_lr_mult * layer_decay ** (distance to
    top)``."""
    return [lr * backbone_lr_mult * layer_decay ** (num_stages - 1 - i) for i in range(num_stages)]


class WarmupCosine:
    """Multiplier of the base lr at ``step``: linear warm-up from ~0, then cosine decay to ``min_ratio``."""

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float):
        self.total_steps, self.warmup_steps, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05,
                       min_lr_ratio: float = 0.0, **_) -> dict:
    """Linear warm-up over ``warmup_fraction`` of training, then cosine decay to ``min_lr_ratio * lr``, per step.

    Every parameter group keeps its own ratio to its base lr, so discriminative learning rates survive the schedule.
    """
    total_steps = max(int(total_steps), 1)
    warmup = min(int(round(warmup_fraction * total_steps)), total_steps - 1)
    schedule = LambdaLR(optimizer, WarmupCosine(total_steps, warmup, min_lr_ratio))
    return {"scheduler": schedule, "interval": "step", "name": "lr"}


def step_lr(optimizer: torch.optim.Optimizer, step_size: int = 7, gamma: float = 0.1, **_) -> dict:
    """Multiply every learning rate by ``gamma`` each ``step_size`` epochs."""
    return {"scheduler": StepLR(optimizer, step_size=step_size, gamma=gamma), "interval": "epoch", "name": "lr"}


class InverseDecay:
    """Multiplier ``(1 + alpha * p) ** -beta`` of the base lr at progress ``p = step / total_steps``."""

    def __init__(self, total_steps: int, alpha: float, beta: float):
        self.total_steps, self.alpha, self.beta = total_steps, alpha, beta

    def __call__(self, step: int) -> float:
        return (1 + self.alpha * min(step / self.total_steps, 1.0)) ** -self.beta


def dann_annealing(optimizer: torch.optim.Optimizer, total_steps: int, alpha: float = 10.0, beta: float = 0.75,
                   **_) -> dict:
    """DANN's lr annealing ``mu_p = mu_0 / (1 + alpha p) ** beta`` (Ganin et al.: alpha 10, beta 0.75), per step.

    Every parameter group keeps its ratio to its base lr (backbone multipliers survive)."""
    schedule = LambdaLR(optimizer, InverseDecay(max(int(total_steps), 1), float(alpha), float(beta)))
    return {"scheduler": schedule, "interval": "step", "name": "lr"}
