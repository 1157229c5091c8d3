"""A sweep of K linear probes (lr x weight decay): K naive jobs against one run of K heads on cached features.

Naive: K separate ``strategy=linear_probe`` runs, each pushing every (augmented) image through the frozen backbone
every epoch. Cached: one ``data.cache_features=true strategy.head_grid=...`` run that extracts the features
once and trains the K heads together. Both pick their best configuration by validation accuracy and report its
test accuracy (tested on images, through the whole network). Goals: speedup >= 20x at K = 8, >= 50x at K = 45.

Timed: wall seconds of each whole job in this process (``load_config`` + ``train``: build, fit, test). Each naive
job runs once (their sum is the naive time); the cached run ``--repeats`` times, spread evenly between the naive
jobs (the first before them, the last after them), and its median is the cached time, with min–max. One record
holds every K of one invocation, one row each (``--k 8,45``, the default, measures both), so nothing is merged.

    python benchmarks/probe_sweep.py                 # K = 8 and K = 45 on digits, 32 px, 30 images per class, 10 epochs
    python benchmarks/probe_sweep.py --k 8           # K = 8 only
    python benchmarks/probe_sweep.py --quick         # K = 2, a few batches: a smoke run
    python benchmarks/probe_sweep.py --record benchmarks/results/probe_sweep.json --write-results
    python benchmarks/probe_sweep.py --report benchmarks/results/probe_sweep.json --write-results  # table only

Each run writes into a new ``outputs/benchmarks/probe_sweep/<time>`` (or ``--out``, a new or empty folder): the K
naive run folders (``k<K>_naive_<i>``), the cached ones (``k<K>_cached``, ``k<K>_cached_<r>``), ``result.json`` (the
record, with every job's wall time and accuracies) and ``result.md`` (its section, as ``table`` renders it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, add_record_arguments, cli, fresh_out, publish, report, republish  # noqa: E402
from timing_record import header, judged, machine, positive, spread  # noqa: E402

from transferlab.experiment import load_config, train  # noqa: E402

NAME = "probe_sweep"
LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
WEIGHT_DECAYS = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
GRIDS = {8: (LRS[2:6], WEIGHT_DECAYS[:2]), 45: (LRS, WEIGHT_DECAYS)}
GOALS = {8: 20.0, 45: 50.0}  # speedup at least, by K
# 10 epochs: linear-probe protocols train the head for tens of epochs (SimCLR and MAE: 90-100); at 4 the heads were
# far from converged (test acc 18-33%) and a naive job was mostly fixed cost (model build, test pass).
RECIPE = ["strategy=linear_probe", "data.image_size=32", "data.samples_per_class=30", "trainer.max_epochs=10",
          "scheduler=none", "optimizer=adamw", "logger=none", "callbacks.rich_progress_bar=null",
          "callbacks.evaluation_figures=null", "+trainer.enable_progress_bar=false",
          "+trainer.enable_model_summary=false"]
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "data.image_size=32", "data.samples_per_class=5"]


def run(overrides: list[str], out: Path) -> dict:
    """One job through transferlab's own entry point: its wall seconds, val and test accuracy."""
    start = time.perf_counter()
    cfg = load_config([*RECIPE, *overrides], output_dir=out)
    train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    return {"wall": time.perf_counter() - start, "val_acc": metrics["val/acc"], "test_acc": metrics["test/acc"]}


def cached_slots(k: int, repeats: int) -> list[int]:
    """Before which naive job (``k``: after the last) each cached repeat runs: evenly spread, one repeat after all."""
    return [k] if repeats == 1 else [round(r * k / (repeats - 1)) for r in range(repeats)]


def compare(k: int, lrs: list[float], decays: list[float], repeats: int, out: Path, extra: list[str]) -> dict:
    """One row: the K naive jobs and ``repeats`` cached runs, interleaved (``cached_slots``)."""
    grid = list(itertools.product(lrs, decays))[:k]
    head_grid = f"strategy.head_grid={{lr:[{','.join(map(str, lrs))}],weight_decay:[{','.join(map(str, decays))}]}}"
    slots = cached_slots(len(grid), repeats)
    naive, cached, order = [], [], []
    for i in range(len(grid) + 1):
        for _ in range(slots.count(i)):
            folder = out / (f"k{k}_cached_{len(cached)}" if cached else f"k{k}_cached")
            cached.append(run(["data.cache_features=true", head_grid, *extra], folder))
            order.append(f"cached {len(cached) - 1}")
        if i < len(grid):
            lr, wd = grid[i]
            naive.append({"lr": lr, "weight_decay": wd, **run([f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}",
                                                                *extra], out / f"k{k}_naive_{i}")})
            order.append(f"naive {i}")
    best = max(naive, key=lambda m: m["val_acc"])
    naive_s, cached_s = sum(m["wall"] for m in naive), statistics.median(m["wall"] for m in cached)
    return {"k": len(grid), "head_grid": head_grid, "order": order, "naive": naive, "cached": cached,
            "naive_s": naive_s, "cached_s": cached_s, "speedup": naive_s / cached_s,
            "naive_test_acc": best["test_acc"], "cached_test_acc": cached[0]["test_acc"],
            "naive_val_acc": best["val_acc"], "cached_val_acc": cached[0]["val_acc"]}


def table(result: dict) -> str:
    """The probe_sweep section of RESULTS.md, from the record alone."""
    repeats = result["repeats"]
    how = ("one run, after the naive jobs" if repeats == 1 else
              f"median of {repeats} runs spread evenly between the naive jobs (the first before them, the last after "
           f"them), with min–max; speedup = naive / cached median, in brackets naive / slowest – naive / fastest "
           f"cached run")
    timed = (f"Each job: `{' '.join(result['recipe'])}` (plus its lr and weight decay, or the cached head grid), "
             f"timed as wall seconds of the whole job in one process (`load_config` + `train`: build, fit, test). "
             f"Naive: the sum over the K jobs, each run once (per job: median, min–max). Cached: {how}. Test "
             f"accuracy of the configuration best by validation accuracy (cached: its first run; a range when its "
             f"runs differ).")
    lines = [header(result, timed), "",
             "| K | naive: K jobs, s (per job) | cached: K heads in one run, s | speedup | goal | "
             "test acc, best by val: naive / cached |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        naive, cached = [m["wall"] for m in row["naive"]], [m["wall"] for m in row["cached"]]
        speedup = f"{row['speedup']:.1f}×"
        if len(cached) > 1:
            speedup += f" ({row['naive_s'] / max(cached):.1f}–{row['naive_s'] / min(cached):.1f}×)"
        goal = result["goals"].get(str(row["k"]))
        verdict = "—" if goal is None else judged(result, row["speedup"] >= goal, f"≥ {goal:g}×")
        accs = [100 * m["test_acc"] for m in row["cached"]]
        acc = f"{100 * row['naive_test_acc']:.1f}% / {100 * row['cached_test_acc']:.1f}%"
        if min(accs) != max(accs):
            acc += f" (cached runs {min(accs):.1f}–{max(accs):.1f}%)"
        lines.append(f"| {row['k']} | {row['naive_s']:.1f} (per job {per_job(naive)}) | {spread(cached, 1)} | "
                     f"{speedup} | {verdict} | {acc} |")
    return "\n".join(lines)


def per_job(walls: list[float]) -> str:
    """``median, min–max`` of the naive jobs' wall seconds."""
    return f"{statistics.median(walls):.1f}, {min(walls):.1f}–{max(walls):.1f}"


def k_values(text: str) -> list[int]:
    """``--k``: one K or a comma-separated list, each a key of ``GRIDS``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v not in GRIDS for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give K from {', '.join(map(str, GRIDS))}, e.g. 8,45")
    return values


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure (or with ``--report`` only re-render) and publish; returns the rows (one per K)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 2 on a few batches: a smoke run")
    parser.add_argument("--k", type=k_values, nargs="+", default=[[8, 45]],
                        help="K values, comma-separated or spaced, of " + ", ".join(map(str, GRIDS)))
    parser.add_argument("--repeats", type=positive, default=3, help="runs of the cached job per K (the median is used)")
    parser.add_argument("--threads", type=positive, default=1, help="intra-op CPU threads of every job")
    add_out_argument(parser, NAME)
    add_record_arguments(parser, NAME)
    args = parser.parse_args(argv)
    result = republish(NAME, args, table)
    if result is not None:
        return result["rows"]
    torch.set_num_threads(args.threads)
    out = fresh_out(NAME, args.out)
    if args.quick:
        args.repeats = 1
    plans = [(2, [1e-3, 1e-2], [0.0])] if args.quick else [(k, *GRIDS[k]) for k in dict.fromkeys(sum(args.k, []))]
    extra = [*(QUICK if args.quick else []), f"threads={args.threads}"]
    rows = [compare(k, lrs, decays, args.repeats, out, extra) for k, lrs, decays in plans]
    result = {"benchmark": NAME, **machine(NAME, argv), "quick": args.quick, "recipe": [*RECIPE, *extra],
              "repeats": args.repeats, "goals": {str(k): goal for k, goal in GOALS.items()}, "rows": rows}
    text = table(result)
    report(out, result, [text], echo=False)
    publish(NAME, result, text, args.record, args.write_results)
    return rows


if __name__ == "__main__":
    cli(main)
