"""Step time of a 3-head multitask model against a 1-head one: same backbone, batch, optimizer and device.

Both modules share one ``Backbone`` instance; each has its own heads and AdamW. A step is forward, the multitask
loss (``Multitask.compute_losses``), backward and an optimizer step. Repeats alternate which variant goes first,
and the median over repeats is reported with its min–max (the ratio with the min–max of the per-repeat ratios), so
drift in machine load hits both alike. Goal: 3 heads / 1 head <= 1.05x.

    python benchmarks/multitask_cost.py                 # 64 px, batch 32, 15 repeats of 5 steps each
    python benchmarks/multitask_cost.py --quick         # smoke run (seconds)
    python benchmarks/multitask_cost.py --record benchmarks/results/multitask_cost.json --write-results
    python benchmarks/multitask_cost.py --report benchmarks/results/multitask_cost.json --write-results  # table only

Each run writes into a new ``outputs/benchmarks/multitask_cost/<time>`` (or ``--out``, a new or empty folder):
``result.json`` (the record, with every repeat's time) and ``result.md`` (its section, as ``table`` renders it).
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

from common import add_out_argument, add_record_arguments, cli, fresh_out, publish, report, republish  # noqa: E402
from timing_record import machine, positive, ratio_table  # noqa: E402

from transferlab.backbones import create_backbone  # noqa: E402
from transferlab.strategies import Multitask  # noqa: E402

NAME = "multitask_cost"
TASKS = {"digit": 10, "parity": 2, "ge5": 2}
GOAL = 1.05  # 3 heads / 1 head, at most


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


def table(result: dict) -> str:
    """The multitask_cost section of RESULTS.md, from the record alone."""
    n = result["repeats"]
    timed = (f"Timed: one step = forward, multitask loss, backward and AdamW step of EfficientNet-Lite0 (packaged "
             f"ImageNet weights, one backbone shared by both variants) with heads {', '.join(result['tasks'])} "
             f"against {result['tasks'][0]} alone, on random {result['image_size']} px images, batch "
             f"{result['batch']}; `perf_counter` over {result['steps_per_repeat']} step(s) per repeat (their mean), "
             f"after {result['warmup_steps']} warm-up step(s) per variant; {n} repeats interleaved (the order "
             f"alternates); medians with min–max over the repeats; the ratio is of the medians, with the min–max of "
             f"the per-repeat ratios.")
    return ratio_table(result, timed, "variant", list(result["seconds_per_step"]),
                       ("3 heads", "1 head", result["ratio_3_vs_1"]), (2, 4))


def main(argv: list[str] | None = None) -> dict:
    """Measure (or with ``--report`` only re-render) and publish; returns the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=positive, default=15, help="interleaved timing rounds per variant")
    parser.add_argument("--steps", type=int, default=5, help="steps per timing round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=positive, default=1, help="intra-op CPU threads (torch.set_num_threads)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, batch 4, 2 rounds of 1 step")
    add_out_argument(parser, NAME)
    add_record_arguments(parser, NAME)
    args = parser.parse_args(argv)
    result = republish(NAME, args, table)
    if result is not None:
        return result
    torch.set_num_threads(args.threads)
    out = fresh_out(NAME, args.out)
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
    orders = []
    for r in range(args.repeats):
        orders.append(list(variants) if r % 2 == 0 else list(reversed(variants)))
        for name in orders[-1]:
            times[name].append(timed(*variants[name], images, targets, args.steps))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"benchmark": NAME, **machine(NAME, argv), "quick": args.quick, "device": "cpu",
              "tasks": list(TASKS), "image_size": args.size, "batch": args.batch, "repeats": args.repeats,
              "steps_per_repeat": args.steps, "warmup_steps": args.warmup, "order": orders,
              "seconds_per_step": times, "ms_per_step": {name: round(1000 * m, 2) for name, m in median.items()},
              "ratio_3_vs_1": round(median["3 heads"] / median["1 head"], 4), "goal_ratio_max": GOAL}
    text = table(result)
    report(out, result, [text], echo=False)
    publish(NAME, result, text, args.record, args.write_results)
    return result


if __name__ == "__main__":
    cli(main)
