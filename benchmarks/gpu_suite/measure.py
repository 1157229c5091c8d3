"""Plain-torch measurement pieces: synthetic images, the hand-written training step and loop, timed rates, FLOPs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import now
from torch.utils.flop_counter import FlopCounterMode

from .budget import Part


def stats(values: list[float]) -> dict:
    """Median, min, max and spread ((max - min) / median, %) of repeated figures."""
    if not values:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "n": 0}
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread_pct": 100 * (max(values) - min(values)) / med if med else None, "n": len(values)}


def synthetic_uint8(n: int, size: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random uint8 images (3 x ``size`` x ``size``) and labels of 10 classes, made on ``device``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, 10, (n,), device=device, generator=generator)
    return images, labels


def normalizer(data_config, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 images -> floats normalised with the backbone's mean and std, on ``device``."""
    mean = torch.tensor(list(data_config.mean), device=device).view(1, 3, 1, 1)
    std = torch.tensor(list(data_config.std), device=device).view(1, 3, 1, 1)
    return lambda u8: (u8.float().div_(255) - mean) / std


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def adamw(parameters) -> torch.optim.AdamW:
    """The optimizer of every hand-written side: AdamW, lr 1e-3, weight decay 0.05, trainable parameters only."""
    return torch.optim.AdamW([p for p in parameters if p.requires_grad], lr=1e-3, weight_decay=0.05)


def train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> None:
    """Forward (under bf16 autocast when ``bf16``), cross-entropy, backward, optimizer step."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def loop_seconds_per_step(model, images, labels, normalize, device, bf16: bool, channels_last: bool, batch: int,
                          warmup: int, steps: int) -> float:
    """The hand-written loop: index the uint8 images, normalise, ``train_step``; seconds per timed step."""
    model.train()
    optimizer = adamw(model.parameters())
    order = torch.randperm(len(images), device=device)
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            start = now(device)
        index = order[i * batch:(i + 1) * batch]
        train_step(model, optimizer, layout(normalize(images[index]), channels_last), labels[index], bf16)
    return (now(device) - start) / steps


def timed_rate(part: Part, step: Callable[[], None], device, batch: int, warmup: int, steps: int, repeats: int,
               record: dict) -> None:
    """``warmup`` untimed calls of ``step``, then repeats of ``steps`` timed ones while the budget allows.

    Writes ``warmup_s`` (compilation included), ``img_s`` (stats over repeats) and ``ms_per_step`` into ``record``,
    after every repeat.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    now(device)
    record["warmup_s"] = time.perf_counter() - start
    rates: list[float] = []
    for _ in part.repeats(repeats):
        t = now(device)
        for _ in range(steps):
            step()
        rates.append(batch * steps / (now(device) - t))
        record["img_s"] = stats(rates)
        record["ms_per_step"] = 1000 * batch / record["img_s"]["median"]


def counted_gflop(module, x: torch.Tensor, train: bool) -> float:
    """GFLOP torch counts (``FlopCounterMode``) per image for a forward (+ backward when ``train``)."""
    counter = FlopCounterMode(display=False)
    with counter:
        if train:
            F.cross_entropy(module(x), torch.zeros(len(x), dtype=torch.long, device=x.device)).backward()
        else:
            with torch.inference_mode():
                module(x)
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x) / 1e9
