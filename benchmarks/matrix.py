"""Every accuracy table of RESULTS.md from one command: strategies x embedded tasks x seeds, each a real
``python -m transferlab.run`` in its own process, records in ``benchmarks/results/runs.json``.

Tasks (recipes are the shipped configs; nothing here was tuned on a test figure):

- ``digits``: the default job (EfficientNet-Lite0 with its packaged ImageNet weights, 64 px, 5 epochs): scratch,
  linear_probe, finetune with freeze_depth 0 and 4 (of 8 stages); seeds 0-4.
- ``fewshot``: ``experiment=digits_fewshot``, 10 training and 10 validation images per class (selection never sees
  more labels than training); finetune, linear_probe, and scratch at three learning rates, its own lr chosen by mean
  validation accuracy; seeds 0-4 x split seeds 0, 1.
- ``multitask``: ``experiment=digits_multitask`` (digit, parity, >=5) with fixed and uncertainty weighting; seeds 0-4.
- ``da``: the embedded pairs ``digits_blend`` (where DANN's defaults were chosen: a development pair) and
  ``fonts_to_digits`` (untouched), da_protocol's recipe, Lite0: source_only, dann, cdan, mcc; seeds 0-4.

Every run's checkpoint is the one its monitor (validation accuracy; source validation accuracy for DA) selects, and
test figures are measured on it. Tables give mean ± 95% t-interval over n runs and paired gains with a verdict.

    python benchmarks/matrix.py --jobs 2 --threads 1 --record benchmarks/results/runs.json --write-results
    python benchmarks/matrix.py --quick                    # smoke run: every task, one seed, a few steps
    python benchmarks/matrix.py --report benchmarks/results/runs.json --write-results   # tables only

Runs go to ``--out`` (default a new ``outputs/benchmarks/matrix/<time>``); an ``--out`` holding finished runs of
this benchmark is continued, never overwritten.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from da_protocol import RECIPE as DA_RECIPE  # noqa: E402
from protocol import (  # noqa: E402
    add_arguments,
    cli,
    code_version,
    fmt,
    load_record,
    machine,
    mean_ci,
    run,
    run_all,
    runs_folder,
    save_records,
    verdict,
    write_section,
)
from protocol import folder_name as safe_name  # noqa: E402

SEEDS = [(seed, 0) for seed in range(5)]
FEWSHOT_SEEDS = [(seed, split) for split in (0, 1) for seed in range(5)]
SCRATCH_LRS = ("1e-3", "3e-3", "1e-2")
QUIET = ["callbacks.evaluation_figures=null", "logger=none", "callbacks.rich_progress_bar=null",
         "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "data.image_size=16"]
QUICK_DA = ["trainer.max_steps=4", "data.validator_samples=16", "callbacks.domain_report.max_samples=16"]

# task -> (title, base overrides, rows {label: overrides}, seeds, test metric(s), baseline row for gains)
TASKS = {
    "digits": ("digits, default job", [], {
        "scratch": ["strategy=scratch"], "linear_probe": ["strategy=linear_probe"],
        "finetune, freeze 0": ["strategy=finetune"], "finetune, freeze 4": ["strategy=finetune",
                                                                            "strategy.freeze_depth=4"]},
        SEEDS, ["test/acc"], "scratch"),
    "fewshot": ("few-shot digits, 10 + 10 images per class", ["experiment=digits_fewshot"], {
        "finetune": ["strategy=finetune"], "linear_probe": ["strategy=linear_probe"],
        **{f"scratch, lr {lr}": ["strategy=scratch", f"optimizer.lr={lr}"] for lr in SCRATCH_LRS}},
        FEWSHOT_SEEDS, ["test/acc"], "scratch"),
    "multitask": ("multi-task digits (digit, parity, >=5)", ["experiment=digits_multitask"], {
        "fixed": ["strategy.weighting=fixed"], "uncertainty": ["strategy.weighting=uncertainty"]},
        SEEDS, ["test/task/digit/acc", "test/task/parity/acc", "test/task/ge5/acc"], None),
    **{f"da {pair}": (f"domain adaptation, {pair}", [f"data={pair}", "model=efficientnet_lite0", *DA_RECIPE], {
        method: [f"strategy={method}"] for method in ("source_only", "dann", "cdan", "mcc")},
        SEEDS, ["test/target_acc", "test/source_acc"], "source_only") for pair in ("digits_blend", "fonts_to_digits")},
}
NOTES = {
    "digits": "Rows as shipped: `python -m transferlab.run strategy=<row>`.",
    "fewshot": "Scratch gets its own learning rate, chosen by mean validation accuracy over its runs; only the "
               "chosen lr's test figure is a result, the other scratch rows are the selection.",
    "multitask": "Weights 1 / 0.5 / 0.5 (`experiment=digits_multitask`); under uncertainty weighting each weight "
                 "scales its task's whole term.",
    "da digits_blend": "The development pair: DANN's defaults were chosen on its target validation accuracy "
                       "(da_protocol), so its DANN row is not an untouched result.",
    "da fonts_to_digits": "Never used for a choice.",
}


def plan(args) -> list[dict]:
    code = code_version()
    jobs = []
    for task, (_, base, rows, seeds, _, _) in TASKS.items():
        if args.quick:
            rows = dict(list(rows.items())[:2] + ([list(rows.items())[-1]] if task == "fewshot" else []))
            seeds = seeds[:1]
        for row, overrides in rows.items():
            for seed, split in seeds:
                extra = (QUICK + (QUICK_DA if task.startswith("da") else [])) if args.quick else []
                overrides = list(dict.fromkeys([*base, *overrides, *QUIET, *extra]))  # DA's recipe has QUIET's
                jobs.append({"task": task, "row": row, "seed": seed, "split_seed": split, "code": code,
                             "overrides": [*overrides, f"seed={seed}", f"data.split_seed={split}"]})
    return jobs


def run_job(job: dict, out: Path, threads: int) -> dict:
    metrics, error = run(job["overrides"], out / safe_name(f"{job['task']}_{job['row']}_s{job['seed']}_"
                                                          f"p{job['split_seed']}"), threads)
    if metrics is None:
        print(f"matrix: {job['task']} / {job['row']} seed {job['seed']} failed: {error}", file=sys.stderr)
        return {**job, "status": "failed", "error": error}
    values = metrics.get("metrics", {})
    return {**job, "status": metrics["status"], "seconds": metrics["seconds"], "val": metrics.get("monitor_value"),
            "monitor": metrics.get("monitor"), "threads": metrics.get("environment", {}).get("threads"),
            "test": {k: v for k, v in values.items() if k.startswith("test/") and k.endswith("acc")}}


# --- tables -------------------------------------------------------------------------------------------------------
def done(records: list[dict], task: str, row: str) -> list[dict]:
    return [r for r in records if r["task"] == task and r["row"] == row and r["status"] == "completed"]


def chosen_scratch(records: list[dict], task: str) -> str | None:
    """The scratch row (learning rate) with the best mean validation accuracy."""
    rows = {r["row"] for r in records if r["task"] == task and r["row"].startswith("scratch")}
    return max(sorted(rows), key=lambda row: mean_ci([r["val"] for r in done(records, task, row)])[0], default=None)


def paired(records: list[dict], task: str, row: str, base: str, key: str) -> list[float]:
    by_seed = {(r["seed"], r["split_seed"]): r["test"].get(key) for r in done(records, task, base)}
    return [r["test"][key] - by_seed[(r["seed"], r["split_seed"])] for r in done(records, task, row)
            if by_seed.get((r["seed"], r["split_seed"])) is not None and r["test"].get(key) is not None]


def task_table(records: list[dict], task: str) -> list[str]:
    title, _, _, _, keys, base = TASKS[task]
    rows = list(dict.fromkeys(r["row"] for r in records if r["task"] == task))
    if base == "scratch" and any(r.startswith("scratch,") for r in rows):
        base = chosen_scratch(records, task)
    names = [k.removeprefix("test/").replace("task/", "").replace("/acc", "") or k for k in keys]
    gain = f" | {names[0]} gain vs {base} | verdict" if base else ""
    lines = [f"**{title}** ({NOTES[task]})", "",
             f"| row | n | val (selects) | {' | '.join(f'test {n}' for n in names)}{gain} | s/run |",
             "|---|---|---|" + "---|" * len(keys) + ("---|---|" if base else "") + "---|"]
    for row in rows:
        runs = done(records, task, row)
        selection_only = row.startswith("scratch,") and row != base
        tests = " | ".join("(selection)" if selection_only else fmt([r["test"].get(k) for r in runs]) for k in keys)
        gains = paired(records, task, row, base, keys[0]) if base and row != base and not selection_only else []
        extra = (f" | {fmt(gains)} | {verdict(gains)}" if gains else " | |") if base else ""
        label = f"{row} **(chosen)**" if row == base and row.startswith("scratch,") else row
        seconds = statistics.mean(r["seconds"] for r in runs) if runs else float("nan")
        lines.append(f"| {label} | {len(runs)} | {fmt([r['val'] for r in runs])} | {tests}{extra} | {seconds:.0f} |")
    return lines


def tables(data: dict) -> str:
    records, meta = data["runs"], data["meta"]
    failed = [r for r in records if r["status"] != "completed"]
    codes = ", ".join(dict.fromkeys(r["code"] for r in records))
    text = [f"Measured {meta['date']} on {meta['cpu']}, {meta['threads']} intra-op thread(s) per run, {meta['jobs']} "
            f"run(s) at a time, {meta['versions']}, code {codes}, {meta['wall_s'] / 60:.0f} min wall. Accuracies in "
            "%, mean ± 95% t-interval over n runs (seeds × split seeds); gains paired by (seed, split seed); "
            "val = the monitored validation accuracy of the selected checkpoint; s/run = wall seconds of one run "
            "(runs shared the machine, so read them as rough)."]
    for task in dict.fromkeys(r["task"] for r in records):
        text += ["", *task_table(records, task)]
    if failed:
        text += ["", f"Failed runs ({len(failed)}): " + "; ".join(f"{r['task']}/{r['row']}/s{r['seed']}: "
                                                                   f"{r['error']}" for r in failed)]
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every task, two rows, one seed, a few steps")
    parser.add_argument("--tasks", type=lambda text: text.split(","), default=None, help="only these tasks")
    add_arguments(parser, "matrix")
    args = parser.parse_args(argv)
    if args.report is not None:
        data = load_record(args.report)
    else:
        out = runs_folder("matrix", args.out)
        jobs = [j for j in plan(args) if args.tasks is None or j["task"] in args.tasks]
        start = time.perf_counter()
        records = run_all(jobs, lambda j: run_job(j, out, args.threads), args.jobs)
        data = {"meta": machine(args.threads, args.jobs, time.perf_counter() - start, args.quick), "runs": records}
        save_records(data, out, args.record)
    text = tables(data)
    print(text)
    if args.write_results:
        write_section("matrix", text)
    return data


if __name__ == "__main__":
    cli(main)
