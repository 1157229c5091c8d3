"""A sweep of K linear probes (lr x weight decay): K naive jobs against one run of K heads on cached features.

Naive: K separate ``strategy=linear_probe`` runs, each pushing every (augmented) image through the frozen backbone
every epoch. Cached: one ``data.cache_features=true strategy.head_grid=...`` run that extracts the features
once and trains the K heads together. Both pick their best configuration by validation accuracy and report its
test accuracy (tested on images, through the whole network).

    python benchmarks/probe_sweep.py                 # K = 8 and K = 45 on digits, 32 px, 30 images per class, 10 epochs
    python benchmarks/probe_sweep.py --quick         # K = 2, a few batches: a smoke run

Each run writes into a new ``outputs/benchmarks/probe_sweep/<time>`` (or ``--out``, a new or empty folder): the K
naive run folders, the cached one, ``result.json`` and ``result.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, cli, fresh_out, report  # noqa: E402

from transferlab.experiment import load_config, train  # noqa: E402

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
WEIGHT_DECAYS = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
GRIDS = {8: (LRS[2:6], WEIGHT_DECAYS[:2]), 45: (LRS, WEIGHT_DECAYS)}
# 10 epochs: linear-probe protocols train the head for tens of epochs (SimCLR and MAE: 90-100); at 4 the heads were
# far from converged (test acc 18-33%) and a naive job was mostly fixed cost (model build, test pass).
RECIPE = ["strategy=linear_probe", "data.image_size=32", "data.samples_per_class=30", "trainer.max_epochs=10",
          "scheduler=none", "optimizer=adamw", "logger=none", "callbacks.rich_progress_bar=null",
          "callbacks.evaluation_figures=null", "+trainer.enable_progress_bar=false",
          "+trainer.enable_model_summary=false"]
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "data.image_size=32", "data.samples_per_class=5"]


def run(overrides: list[str], out: Path) -> dict:
    """One job through transferlab's own entry point; its metrics.json plus wall seconds."""
    start = time.perf_counter()
    cfg = load_config([*RECIPE, *overrides], output_dir=out)
    train(cfg)
    payload = json.loads((out / "metrics.json").read_text())
    return {**payload["metrics"], "wall": time.perf_counter() - start}


def compare(k: int, lrs: list[float], decays: list[float], out: Path, extra: list[str]) -> dict:
    grid = list(itertools.product(lrs, decays))[:k]
    naive = [run([f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}", *extra], out / f"k{k}_naive_{i}")
             for i, (lr, wd) in enumerate(grid)]
    best = max(naive, key=lambda m: m["val/acc"])
    head_grid = f"strategy.head_grid={{lr:[{','.join(map(str, lrs))}],weight_decay:[{','.join(map(str, decays))}]}}"
    cached = run(["data.cache_features=true", head_grid, *extra], out / f"k{k}_cached")
    naive_wall = sum(m["wall"] for m in naive)
    return {"k": len(grid), "naive_s": naive_wall, "cached_s": cached["wall"], "speedup": naive_wall / cached["wall"],
            "naive_test_acc": best["test/acc"], "cached_test_acc": cached["test/acc"],
            "naive_val_acc": best["val/acc"], "cached_val_acc": cached["val/acc"]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 2 on a few batches: a smoke run")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 45], choices=sorted(GRIDS))
    add_out_argument(parser, "probe_sweep")
    args = parser.parse_args(argv)
    out = fresh_out("probe_sweep", args.out)
    plans = [(2, [1e-3, 1e-2], [0.0])] if args.quick else [(k, *GRIDS[k]) for k in args.k]
    rows = [compare(k, lrs, decays, out, QUICK if args.quick else []) for k, lrs, decays in plans]
    lines = ["| K | naive K jobs (s) | cached, K heads (s) | speedup | test acc naive / cached (best by val) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {r['naive_s']:.1f} | {r['cached_s']:.1f} | {r['speedup']:.1f}x | "
              f"{100 * r['naive_test_acc']:.1f}% / {100 * r['cached_test_acc']:.1f}% |" for r in rows]
    report(out, rows, lines)
    return rows


if __name__ == "__main__":
    cli(main)
