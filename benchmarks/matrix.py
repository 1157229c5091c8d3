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

Beside the digits scratch and finetune (freeze 0) rows and the few-shot finetune row, a "torch loop test" column
gives the same recipe, data and seeds trained by ``benchmarks/torch_loop.py`` (a hand-written PyTorch loop:
``--runner loop`` jobs, records with ``"runner": "loop"``); loop records are never rows, gains or selections.

    python benchmarks/matrix.py --jobs 2 --threads 1 --record benchmarks/results/runs.json --write-results
    python benchmarks/matrix.py --quick                    # smoke run: every task, one seed, a few steps
    python benchmarks/matrix.py --report benchmarks/results/runs.json --write-results   # tables only
    python benchmarks/matrix.py --runner loop --merge benchmarks/results/runs.json \
        --record benchmarks/results/runs.json --write-results   # the loop jobs, added to the record

Runs go to ``--out`` (default a new ``outputs/benchmarks/matrix/<time>``); an ``--out`` holding finished runs of
the same jobs (``job.json``: command and threads) is continued, never overwritten; one holding other jobs' runs (e.g.
of ``--quick``) is refused in one line before any job.
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
    refuse_other_jobs,
    run,
    run_all,
    runs_folder,
    save_records,
    verdict,
    write_section,
)
from protocol import folder_name as safe_name  # noqa: E402

from transferlab.contracts.errors import TransferlabError  # noqa: E402

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
TORCH_LOOP = ROOT / "benchmarks" / "torch_loop.py"
LOOP_ROWS = {"digits": ("scratch", "finetune, freeze 0"), "fewshot": ("finetune",)}  # rows torch_loop reproduces
RUNNERS = ("transferlab", "loop")
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


def runner(record: dict) -> str:
    """Who trained a record: ``transferlab`` (also every record written before the field existed) or ``loop``."""
    return record.get("runner", "transferlab")


def plan(args) -> list[dict]:
    """The jobs of ``args.runner`` (default: transferlab's, and under ``--quick`` also one loop job)."""
    if args.runner is None:
        runners = RUNNERS if args.quick else ("transferlab",)
    else:
        runners = RUNNERS if args.runner == "all" else (args.runner,)
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
                job = {"task": task, "row": row, "seed": seed, "split_seed": split, "code": code,
                       "overrides": [*overrides, f"seed={seed}", f"data.split_seed={split}"]}
                jobs += [{**job, "runner": name} for name in RUNNERS
                         if name in runners and (name == "transferlab" or row in LOOP_ROWS.get(task, ()))]
    if args.quick and args.runner is None:  # one loop job covers the loop
        jobs = [j for j in jobs if j["runner"] == "transferlab"] + [j for j in jobs if j["runner"] == "loop"][:1]
    return jobs


def where(job: dict, out: Path) -> tuple[Path, Path | None]:
    """A job's run folder under ``out`` and its script (None: ``python -m transferlab.run``)."""
    name = f"{job['task']}_{job['row']}_s{job['seed']}_p{job['split_seed']}"
    return (out / safe_name(f"loop_{name}"), TORCH_LOOP) if runner(job) == "loop" else (out / safe_name(name), None)


def run_job(job: dict, out: Path, threads: int) -> dict:
    run_dir, script = where(job, out)
    metrics, error = run(job["overrides"], run_dir, threads, script)
    if metrics is None:
        print(f"matrix: {job['task']} / {job['row']} seed {job['seed']} ({runner(job)}) failed: {error}",
              file=sys.stderr)
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


def loop_cell(loops: list[dict], task: str, row: str, key: str) -> str:
    """The loop's figure for ``row`` (mean ± 95% CI, n), or ``—`` where it has none."""
    runs = [r["test"].get(key) for r in done(loops, task, row)]
    return f"{fmt(runs)} (n={len(runs)})" if runs else "—"


def task_table(records: list[dict], task: str, loops: list[dict] = ()) -> list[str]:
    """``task``'s table from transferlab ``records``; a "torch loop test" column when ``loops`` has runs of it."""
    title, _, _, _, keys, base = TASKS[task]
    with_loop = any(r["task"] == task for r in loops)
    rows = list(dict.fromkeys(r["row"] for r in records if r["task"] == task))
    if base == "scratch" and any(r.startswith("scratch,") for r in rows):
        base = chosen_scratch(records, task)
    names = [k.removeprefix("test/").replace("task/", "").replace("/acc", "") or k for k in keys]
    gain = f" | {names[0]} gain vs {base} | verdict" if base else ""
    lines = [f"**{title}** ({NOTES[task]})", "",
             f"| row | n | val (selects) | {' | '.join(f'test {n}' for n in names)}"
             f"{' | torch loop test' if with_loop else ''}{gain} | s/run |",
             "|---|---|---|" + "---|" * (len(keys) + with_loop) + ("---|---|" if base else "") + "---|"]
    for row in rows:
        runs = done(records, task, row)
        selection_only = row.startswith("scratch,") and row != base
        tests = " | ".join("(selection)" if selection_only else fmt([r["test"].get(k) for r in runs]) for k in keys)
        tests += f" | {loop_cell(loops, task, row, keys[0])}" if with_loop else ""
        gains = paired(records, task, row, base, keys[0]) if base and row != base and not selection_only else []
        extra = (f" | {fmt(gains)} | {verdict(gains)}" if gains else " | |") if base else ""
        label = f"{row} **(chosen)**" if row == base and row.startswith("scratch,") else row
        seconds = statistics.mean(r["seconds"] for r in runs) if runs else float("nan")
        lines.append(f"| {label} | {len(runs)} | {fmt([r['val'] for r in runs])} | {tests}{extra} | {seconds:.0f} |")
    return lines


def measured(meta: dict | list[dict], records: list[dict]) -> str:
    """Where and how the runs were measured: one sentence for one batch of jobs, one clause per merged batch."""
    if isinstance(meta, dict):
        codes = ", ".join(dict.fromkeys(r["code"] for r in records))
        return (f"Measured {meta['date']} on {meta['cpu']}, {meta['threads']} intra-op thread(s) per run, "
                f"{meta['jobs']} run(s) at a time, {meta['versions']}, code {codes}, {meta['wall_s'] / 60:.0f} min "
                "wall.")
    batches = []
    for i, batch in enumerate(meta, 1):
        runners = batch.get("runners", ["transferlab"])  # a batch from before runners existed: transferlab's
        code = batch.get("code") or ", ".join(dict.fromkeys(r["code"] for r in records if runner(r) in runners))
        batches.append(f"({i}) {'/'.join(runners)} runs, {batch['date']} on {batch['cpu']}, {batch['threads']} "
                       f"intra-op thread(s) per run, {batch['jobs']} run(s) at a time, {batch['versions']}, code "
                       f"{code}, {batch['wall_s'] / 60:.0f} min wall")
    return f"Measured in {len(meta)} batches of jobs: {'; '.join(batches)}."


def tables(data: dict) -> str:
    """RESULTS.md's matrix section from a record (``meta`` one dict, or a list after ``--merge``)."""
    records = [r for r in data["runs"] if runner(r) == "transferlab"]
    loops = [r for r in data["runs"] if runner(r) == "loop"]
    failed = [r for r in data["runs"] if r["status"] != "completed"]
    text = [f"{measured(data['meta'], data['runs'])} Accuracies in "
            "%, mean ± 95% t-interval over n runs (seeds × split seeds); gains paired by (seed, split seed); "
            "selection: each run is tested at its checkpoint of best `val/acc` over its epochs (the monitor, max; "
            "early stopping's patience of 100 never ends these runs), the validation accuracy of the task's own "
            "labelled split: the classification tasks' mean for multi-task, the source domain's for DA (never "
            "target labels); val = that selected value; s/run = wall seconds of one run (runs shared the machine, "
            "so read them as rough)."]
    if loops:
        text[0] += (" torch loop test = the row's recipe, data and seeds trained by a hand-written PyTorch loop "
                    "(benchmarks/torch_loop.py: no Lightning, no strategy module), tested at its best validation "
                    "epoch (— where it was not run). Its pretrained rows draw one random init fewer before the head "
                    "than transferlab, so their heads start elsewhere and they are independent replicates; from "
                    "scratch both draw alike.")
    for task in dict.fromkeys(r["task"] for r in records):
        text += ["", *task_table(records, task, loops)]
    if failed:
        text += ["", f"Failed runs ({len(failed)}): " + "; ".join(
            f"{r['task']}/{r['row']}/s{r['seed']}{' (loop)' if runner(r) == 'loop' else ''}: {r['error']}"
            for r in failed)]
    return "\n".join(text) + "\n"


def merge(old: dict, records: list[dict], meta: dict) -> dict:
    """``old``'s records with those of the jobs run now added, or in place of the same (task, row, seed, split seed,
    runner); ``old``'s meta followed by ``meta``."""
    def key(record: dict) -> tuple:
        return record["task"], record["row"], record["seed"], record["split_seed"], runner(record)

    new = {key(r): r for r in records}
    kept = [new.pop(key(r), r) for r in old["runs"]]
    metas = old["meta"] if isinstance(old["meta"], list) else [old["meta"]]
    return {"meta": [*metas, meta], "runs": kept + list(new.values())}


def merge_source(path: Path) -> dict:
    """The record ``--merge`` starts from; one that is unreadable or not this benchmark's is one line."""
    try:
        data = load_record(path)
    except TransferlabError as error:
        raise TransferlabError(str(error).replace("--report", "--merge", 1)) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or "meta" not in data:
        raise TransferlabError(f"--merge {path}: not a matrix record (no runs and meta); give a file written by "
                               "--record, e.g. benchmarks/results/runs.json")
    return data


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every task, two rows, one seed, a few steps")
    parser.add_argument("--tasks", type=lambda text: text.split(","), default=None, help="only these tasks")
    parser.add_argument("--runner", choices=("transferlab", "loop", "all"), default=None,
                        help="whose jobs run: transferlab's (the default), torch_loop's, or both (--quick: "
                             "transferlab's and one loop job)")
    parser.add_argument("--merge", type=Path, default=None,
                        help="start from this record: the jobs run now are added to it or replace its runs of the "
                             "same (task, row, seed, split seed, runner)")
    add_arguments(parser, "matrix")
    args = parser.parse_args(argv)
    if args.report is not None:
        if args.merge is not None:
            raise TransferlabError("--merge adds runs to a record; --report only renders one: give one of them")
        data = load_record(args.report)
    else:
        old = merge_source(args.merge) if args.merge is not None else None  # refused before any job runs
        out = runs_folder("matrix", args.out)
        jobs = [j for j in plan(args) if args.tasks is None or j["task"] in args.tasks]
        refuse_other_jobs(jobs, lambda j: where(j, out), args.threads)
        start = time.perf_counter()
        records = run_all(jobs, lambda j: run_job(j, out, args.threads), args.jobs)
        meta = {**machine(args.threads, args.jobs, time.perf_counter() - start, args.quick), "code": code_version(),
                "runners": list(dict.fromkeys(runner(j) for j in jobs))}
        data = merge(old, records, meta) if old is not None else {"meta": meta, "runs": records}
        save_records(data, out, args.record)
    text = tables(data)
    print(text)
    if args.write_results:
        write_section("matrix", text)
    return data


if __name__ == "__main__":
    cli(main)
