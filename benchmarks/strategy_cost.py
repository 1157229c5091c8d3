"""What domain adaptation costs per step: ``strategy=dann`` against ``strategy=source_only`` at equal per-domain batch.

Both run transferlab's Lightning path on the embedded pair (digits -> digits blended with photos) for the same steps;
DANN also pushes the target batch through the backbone and the discriminator. Repeats alternate the order; the
medians are reported with their min–max over repeats, and the ratio with the min–max of the per-repeat ratios.
Goal: dann / source_only <= 2.05x. The multitask counterpart (3 heads vs 1) is ``benchmarks/multitask_cost.py``.

    python benchmarks/strategy_cost.py               # 32 px, batch 32 per domain, 5 repeats of 12 timed steps
    python benchmarks/strategy_cost.py --quick       # a smoke run
    python benchmarks/strategy_cost.py --record benchmarks/results/strategy_cost.json --write-results
    python benchmarks/strategy_cost.py --report benchmarks/results/strategy_cost.json --write-results  # table only

Each run writes into a new ``outputs/benchmarks/strategy_cost/<time>`` (or ``--out``, a new or empty folder):
``result.json`` (the record, with every repeat's time) and ``result.md`` (its section, as ``table`` renders it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import (  # noqa: E402
    StepTimer,
    add_out_argument,
    add_record_arguments,
    cli,
    device_name,
    fresh_out,
    publish,
    report,
    republish,
)
from timing_record import machine, positive, ratio_table  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402

NAME = "strategy_cost"
STRATEGIES = ("source_only", "dann")
GOAL = 2.05  # dann / source_only, at most


def step_time(strategy: str, args, out: Path) -> float:
    """Seconds per step of one timed repeat; ``out`` is its own folder (the module's config.yaml)."""
    cfg = load_config([f"strategy={strategy}", "data=digits_blend", f"data.image_size={args.size}",
                       f"data.batch_size={args.batch}", "logger=none", "callbacks=none", "seed=0",
                       f"threads={args.threads}"], output_dir=out)
    _, datamodule, module, _ = build(cfg)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(accelerator="auto", devices=1, max_steps=args.warmup + args.steps, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=datamodule)
    return timer.seconds_per_step


def table(result: dict) -> str:
    """The strategy_cost section of RESULTS.md, from the record alone."""
    timed = (f"Timed: seconds per training step of transferlab's Lightning path (`Trainer.fit`, device-synchronised "
             f"at batch boundaries), {result['timed_steps']} steps after {result['warmup_steps']} warm-up steps, "
             f"a fresh build per run; {result['image_size']} px, batch {result['batch_per_domain']} per domain, "
             f"seed 0; {result['repeats']} repeats interleaved (the order alternates); medians with min–max over the "
             f"repeats; the ratio is of the medians, with the min–max of the per-repeat ratios.")
    ratio = ("dann", "source_only", result["ratio_dann_vs_source_only"])
    return ratio_table(result, timed, "strategy", STRATEGIES, ratio, (1, 2))


def main(argv: list[str] | None = None) -> dict:
    """Measure (or with ``--report`` only re-render) and publish; returns the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="images per domain")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--threads", type=positive, default=1, help="intra-op CPU threads (torch.set_num_threads)")
    parser.add_argument("--quick", action="store_true")
    add_out_argument(parser, NAME)
    add_record_arguments(parser, NAME)
    args = parser.parse_args(argv)
    result = republish(NAME, args, table)
    if result is not None:
        return result
    torch.set_num_threads(args.threads)
    out = fresh_out(NAME, args.out)
    if args.quick:
        args.size, args.batch, args.steps, args.warmup, args.repeats = 16, 4, 2, 1, 2
    times = {s: [] for s in STRATEGIES}
    orders = []
    for r in range(args.repeats):
        orders.append(list(STRATEGIES if r % 2 == 0 else STRATEGIES[::-1]))
        for strategy in orders[-1]:
            times[strategy].append(step_time(strategy, args, out / f"{strategy}_{r}"))
    ms = {s: 1000 * statistics.median(t) for s, t in times.items()}
    result = {"benchmark": NAME, **machine(NAME, argv), "quick": args.quick,
              "device": device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
              "image_size": args.size, "batch_per_domain": args.batch, "repeats": args.repeats,
              "timed_steps": args.steps, "warmup_steps": args.warmup, "order": orders, "seconds_per_step": times,
              "ms_per_step": ms, "ratio_dann_vs_source_only": ms["dann"] / ms["source_only"], "goal_ratio_max": GOAL}
    text = table(result)
    report(out, result, [text], echo=False)
    publish(NAME, result, text, args.record, args.write_results)
    return result


if __name__ == "__main__":
    cli(main)
