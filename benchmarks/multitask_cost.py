"""Step time of a 3-head multitask model against a 1-head one: same backbone, batch, optimizer and device.

Both modules share one ``Backbone`` instance; each has its own heads and AdamW. A step is forward, the multitask
loss (``Multitask.compute_losses``), backward and an optimizer step. Repeats alternate which variant goes first,
and the median over repeats is reported, so drift in machine load hits both alike.

    python benchmarks/multitask_cost.py                 # 64 px, batch 32, 15 repeats of 5 steps each
    python benchmarks/multitask_cost.py --quick         # smoke run (seconds)

Each run writes into a new ``outputs/benchmarks/multitask_cost/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, cli, fresh_out, report  # noqa: E402

from transferlab.backbones import create_backbone  # noqa: E402
from transferlab.strategies import Multitask  # noqa: E402

TASKS = {"digit": 10, "parity": 2, "ge5": 2}


def make_module(backbone, names: list[str]) -> tuple[Multitask, torch.optim.Optimizer]:
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-4)
    module = Multitask(backbone, tasks=[{"name": n, "num_classes": TASKS[n]} for n in names], optimizer=optimizer)
    module.train()
    return module, optimizer(module.parameter_groups(1e-4, 0.05))


def step(module: Multitask, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: dict) -> None:
    total, _, _ = module.compute_losses(module(images), targets)
    total.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed(module, optimizer, images, targets, steps: int) -> float:
    """Mean seconds per step over ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step(module, optimizer, images, targets)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds per variant")
    parser.add_argument("--steps", type=int, default=5, help="steps per timing round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, batch 4, 2 rounds of 1 step")
    add_out_argument(parser, "multitask_cost")
    args = parser.parse_args(argv)
    out = fresh_out("multitask_cost", args.out)
    if args.quick:
        args.size, args.batch, args.repeats, args.steps, args.warmup = 32, 4, 2, 1, 1
    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0", source="packaged", weights="imagenet")
    variants = {"1 head": make_module(backbone, ["digit"]), "3 heads": make_module(backbone, list(TASKS))}
    images = torch.randn(args.batch, 3, args.size, args.size)
    targets = {name: torch.randint(0, n, (args.batch,)) for name, n in TASKS.items()}
    for module, optimizer in variants.values():
        timed(module, optimizer, images, targets, args.warmup)
    times = {name: [] for name in variants}
    for r in range(args.repeats):
        for name in (list(variants) if r % 2 == 0 else list(reversed(variants))):
            times[name].append(timed(*variants[name], images, targets, args.steps))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"device": "cpu", "threads": torch.get_num_threads(), "image_size": args.size, "batch": args.batch,
              "repeats": args.repeats, "steps_per_repeat": args.steps,
              "ms_per_step": {name: round(1000 * m, 2) for name, m in median.items()},
              "ratio_3_vs_1": round(median["3 heads"] / median["1 head"], 4)}
    ms = result["ms_per_step"]
    lines = [f"cpu, {result['threads']} threads; {args.size} px, batch {args.batch}, {args.repeats} repeats of "
             f"{args.steps} steps, medians", "| variant | ms/step |", "|---|---|",
             *(f"| {name} | {value:.2f} |" for name, value in ms.items()),
             f"| 3 heads / 1 head | {result['ratio_3_vs_1']:.4f}x |"]
    report(out, result, lines)
    return result


if __name__ == "__main__":
    cli(main)
