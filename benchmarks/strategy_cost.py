"""What domain adaptation costs per step: ``strategy=dann`` against ``strategy=source_only`` at equal per-domain batch.

Both run transferlab's Lightning path on the embedded pair (digits -> digits blended with photos) for the same steps;
DANN also pushes the target batch through the backbone and the discriminator. Repeats alternate the order and the
medians are reported. The multitask counterpart (3 heads vs 1) is ``benchmarks/multitask_cost.py``.

    python benchmarks/strategy_cost.py               # 32 px, batch 32 per domain, 5 repeats of 12 timed steps
    python benchmarks/strategy_cost.py --quick       # a smoke run

Each run writes into a new ``outputs/benchmarks/strategy_cost/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import StepTimer, add_out_argument, cli, device_name, fresh_out, median, report, versions  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402

STRATEGIES = ("source_only", "dann")


def step_time(strategy: str, args, out: Path) -> float:
    """Seconds per step of one timed repeat; ``out`` is its own folder (the module's config.yaml)."""
    cfg = load_config([f"strategy={strategy}", "data=digits_blend", f"data.image_size={args.size}",
                       f"data.batch_size={args.batch}", "logger=none", "callbacks=none", "seed=0"], output_dir=out)
    _, datamodule, module, _ = build(cfg)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(accelerator="auto", devices=1, max_steps=args.warmup + args.steps, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=datamodule)
    return timer.seconds_per_step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="images per domain")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    add_out_argument(parser, "strategy_cost")
    args = parser.parse_args(argv)
    out = fresh_out("strategy_cost", args.out)
    if args.quick:
        args.size, args.batch, args.steps, args.warmup, args.repeats = 16, 4, 2, 1, 2
    times = {s: [] for s in STRATEGIES}
    for r in range(args.repeats):
        for strategy in (STRATEGIES if r % 2 == 0 else STRATEGIES[::-1]):
            times[strategy].append(step_time(strategy, args, out / f"{strategy}_{r}"))
    ms = {s: 1000 * median(t) for s, t in times.items()}
    result = {"device": device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
              "versions": versions(), "image_size": args.size, "batch_per_domain": args.batch,
              "repeats": args.repeats, "timed_steps": args.steps, "ms_per_step": ms,
              "ratio_dann_vs_source_only": ms["dann"] / ms["source_only"]}
    lines = [f"{result['versions']}; {result['device']}; {args.size} px, batch {args.batch} per domain, "
             f"{args.repeats} repeats of {args.steps} timed steps, medians",
             "| strategy | ms/step |", "|---|---|", *(f"| {s} | {ms[s]:.1f} |" for s in STRATEGIES),
             f"| dann / source_only | {result['ratio_dann_vs_source_only']:.2f}x |"]
    report(out, result, lines)
    return result


if __name__ == "__main__":
    cli(main)
