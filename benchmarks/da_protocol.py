"""Domain adaptation under a reviewer's protocol: choose on a development pair, report on an untouched pair.

1. ``select``, on the development pair ``data=digits_blend`` (digits -> other digits blended with photographs):
   source_only and each DANN candidate (lambda_max, discriminator dropout), for both backbones, 2 seeds. A
   candidate's score is the target *validation* accuracy of the checkpoint the run's own monitor (source val
   accuracy) selects, minus source_only's. The chosen candidate maximises the worse of its two backbones' gains
   (ties: the mean gain), so a default that hurts one regime loses to one that helps both a little. Target *test*
   accuracy on this pair is reported and never read by the choice.
2. ``evaluate``, on ``data=fonts_to_digits`` (printed digits in bundled fonts -> handwritten digits: a rendering
   shift, where the development pair's is a background shift), never used for any choice: source_only, adabn
   (target batches through BatchNorm, no domain loss), dann with the chosen candidate, and cdan (CDAN+E) and mcc
   with their papers' defaults (no candidate was tuned for them anywhere), for both backbones, 5
   seeds x 2 split seeds, target test accuracy of the monitor-selected checkpoint, mean +- 95% t-interval, and the
   paired gain over source_only with its interval.

Both backbones are in every comparison: EfficientNet-Lite0 with its packaged ImageNet weights, and ResNet-18 from
scratch (with 32-px images a from-scratch network is a strong baseline). Each run is ``python -m transferlab.run``
in its own process with ``--threads`` intra-op threads, ``--jobs`` at a time. Records go to ``<out>/runs.json``
(``--record FILE`` copies them, e.g. to ``benchmarks/results/da_protocol.json``) and the tables to
``<out>/result.md``; ``--report FILE`` rebuilds the tables from a records file, and ``--write-results`` puts them
into benchmarks/RESULTS.md. An ``--out`` folder that already holds finished runs of the same jobs is continued,
never overwritten; one holding other jobs' runs is refused in one line before the phase's first job.

    python benchmarks/da_protocol.py --jobs 2 --threads 1     # both phases (~50 min on 2 idle cores)
    python benchmarks/da_protocol.py --quick                  # smoke run: every phase, tiny, ~1 min
    python benchmarks/da_protocol.py --report benchmarks/results/da_protocol.json --write-results
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from protocol import (  # noqa: E402
    add_arguments,
    cli,
    code_version,
    fmt,
    load_record,
    machine,
    markers,
    refuse_other_jobs,
    run,
    run_all,
    runs_folder,
    save_records,
    verdict,
    write_section,
)
from protocol import folder_name as safe_name  # noqa: E402

BEGIN, END = markers("da_protocol")

BACKBONES = {"lite0 (ImageNet)": ["model=efficientnet_lite0"],
             "resnet18 (scratch)": ["model=resnet18", "model.weights=none"]}
RECIPE = ["data.image_size=32", "data.batch_size=32", "data.validator_samples=400", "optimizer=adamw",
          "optimizer.lr=1e-3", "scheduler=dann", "strategy.backbone_lr_mult=1.0", "trainer.max_epochs=1000",
          "trainer.max_steps=160", "logger=none", "callbacks.domain_report.method=pca",
          "callbacks.evaluation_figures=null", "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false",
          "+trainer.enable_model_summary=false"]
CANDIDATES = {f"lambda{lam}_drop{drop}": [f"strategy.lambda_max={lam}", f"strategy.discriminator_dropout={drop}"]
              for lam, drop in ((1.0, 0.0), (1.0, 0.5), (0.3, 0.5), (0.1, 0.5))}
LATER_METHODS = ("cdan", "mcc")  # their papers' defaults (conf/strategy/*.yaml), never tuned here
DEV = {"pair": "digits_blend", "seeds": [(100, 100), (101, 101)]}
EVAL = {"pair": "fonts_to_digits", "seeds": [(seed, split) for split in (0, 1) for seed in range(5)],
        "extra": ["data.source_size=1200"]}  # source 840 training images, target 1,258: the target is the larger
QUICK = ["data.image_size=16", "data.batch_size=8", "data.validator_samples=16", "trainer.max_steps=4",
         "trainer.limit_train_batches=2",
         "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "callbacks.domain_report.max_samples=16"]


# --- running ------------------------------------------------------------------------------------------------------
CODE = code_version()


def job(phase: str, pair: str, backbone: str, method: str, candidate: str | None, seed: int, split: int,
        overrides: list[str]) -> dict:
    return {"phase": phase, "pair": pair, "backbone": backbone, "method": method, "candidate": candidate,
            "seed": seed, "split_seed": split, "overrides": overrides, "code": CODE}


def plan(phase: str, args, chosen: str | None = None) -> list[dict]:
    """The jobs of one phase: (backbone x method x seeds)."""
    quick = args.quick
    backbones = dict(list(BACKBONES.items())[-1:]) if quick else BACKBONES
    spec = DEV if phase == "select" else EVAL
    seeds = spec["seeds"][:1] if quick else spec["seeds"]
    methods = {"source_only": (None, ["strategy=source_only"])}
    if phase == "select":
        candidates = dict(list(CANDIDATES.items())[:1]) if quick else CANDIDATES
        methods |= {f"dann {name}": (name, ["strategy=dann", *o]) for name, o in candidates.items()}
    else:
        methods |= {"adabn": (None, ["strategy=adabn"]), "dann": (chosen, ["strategy=dann", *CANDIDATES[chosen]]),
                    **{m: (None, [f"strategy={m}"]) for m in LATER_METHODS}}
    if getattr(args, "methods", None):
        methods = {m: v for m, v in methods.items() if m.split()[0] in args.methods}
    jobs = []
    for backbone, model in backbones.items():
        for method, (candidate, strategy) in methods.items():
            for seed, split in seeds:
                overrides = [*strategy, f"data={spec['pair']}", *model, *RECIPE, *spec.get("extra", []),
                             *(QUICK if quick else []), f"seed={seed}", f"data.split_seed={split}"]
                jobs.append(job(phase, spec["pair"], backbone, method, candidate, seed, split, overrides))
    return jobs


def folder_name(j: dict) -> str:
    return safe_name(f"{j['phase']}_{j['backbone']}_{j['method']}_s{j['seed']}_p{j['split_seed']}")


def where(j: dict, out: Path) -> tuple[Path, None]:
    """A job's run folder under ``out``, and no script (``python -m transferlab.run``)."""
    return out / folder_name(j), None


def run_job(j: dict, out: Path, threads: int) -> dict:
    """Run one job in its own process (or reuse its finished run); return its record."""
    run_dir, script = where(j, out)
    metrics, error = run(j["overrides"], run_dir, threads, script)
    if metrics is None:
        print(f"da_protocol: {folder_name(j)} failed: {error}", file=sys.stderr)
        return {**j, "status": "failed", "error": error}
    return {**j, **record(metrics)}


def record(metrics: dict) -> dict:
    """What the tables need from one run's metrics.json."""
    values, report = metrics["metrics"], metrics.get("domain_adaptation", {})
    selection, history = report.get("selection", {}), report.get("history", [])
    chosen_epoch = selection.get("val/acc", {}).get("epoch")
    chosen_row = next((r for r in history if r["epoch"] == chosen_epoch), {})
    return {"status": metrics["status"], "seconds": metrics["seconds"],
            "target_test_acc": values.get("test/target_acc"), "source_test_acc": values.get("test/source_acc"),
            "target_val_acc_selected": chosen_row.get("val/target_acc_oracle"),
            "selected_epoch": chosen_epoch, "epochs": len(history),
            "target_test_acc_last": report.get("target_test_acc_last"),
            "target_test_acc_by": {k.removeprefix("val/"): v["target_test_acc"] for k, v in selection.items()},
            "domain_acc_last": history[-1].get("domain/acc") if history else None,
            "pad_start": values.get("domain/pad_start", metrics.get("domain/pad_start")),
            "pad_end": values.get("domain/pad_end", metrics.get("domain/pad_end")),
            "warnings": report.get("warnings", [])}


# --- statistics and tables ----------------------------------------------------------------------------------------
def completed(records: list[dict], **where) -> list[dict]:
    return [r for r in records if r["status"] == "completed" and all(r.get(k) == v for k, v in where.items())]


def paired_gains(records: list[dict], backbone: str, method: str, key: str) -> list[float]:
    """``method`` minus source_only on the same (seed, split seed), backbone and code version."""
    def pair(r: dict) -> tuple:
        return r["seed"], r["split_seed"], r.get("code")

    base = {pair(r): r[key] for r in completed(records, backbone=backbone, method="source_only")}
    return [r[key] - base[pair(r)] for r in completed(records, backbone=backbone, method=method)
            if pair(r) in base and r[key] is not None]


def choose(records: list[dict]) -> str:
    """The DANN candidate whose worse backbone gains most in selected-checkpoint target *val* accuracy."""
    dev = [r for r in records if r["phase"] == "select"]
    scores = {}
    for candidate in sorted({r["candidate"] for r in dev if r["candidate"]}):
        gains = [statistics.mean(g) for b in sorted({r["backbone"] for r in dev})
                 if (g := paired_gains(dev, b, f"dann {candidate}", "target_val_acc_selected"))]
        if gains:
            scores[candidate] = (min(gains), statistics.mean(gains))
    if not scores:
        from transferlab.contracts.errors import TransferlabError

        raise TransferlabError("da_protocol: no completed development run to choose from; see the runs' "
                               "metrics.json under --out")
    return max(scores, key=scores.get)


def selection_table(records: list[dict], chosen: str) -> list[str]:
    dev = [r for r in records if r["phase"] == "select"]
    lines = ["| backbone | method | target val acc, selected ckpt (chooses) | gain vs source_only | target test acc "
             "(not used) | domain/acc end | n |", "|---|---|---|---|---|---|---|"]
    for backbone in dict.fromkeys(r["backbone"] for r in dev):
        for method in dict.fromkeys(r["method"] for r in dev):
            runs = completed(dev, backbone=backbone, method=method)
            gain = "" if method == "source_only" else fmt(paired_gains(dev, backbone, method,
                                                                       "target_val_acc_selected"))
            mark = " **(chosen)**" if method == f"dann {chosen}" else ""
            lines.append(f"| {backbone} | {method}{mark} | {fmt([r['target_val_acc_selected'] for r in runs])} | "
                         f"{gain} | {fmt([r['target_test_acc'] for r in runs])} | "
                         f"{fmt([r['domain_acc_last'] for r in runs], 1.0)} | {len(runs)} |")
    return lines


def evaluation_table(records: list[dict]) -> list[str]:
    ev = [r for r in records if r["phase"] == "evaluate"]
    lines = ["| backbone | method | target test acc (monitor: source val) | gain vs source_only | verdict | "
             "source test acc | target test, last epoch | by IM | by DEV | domain/acc end | runs warned | n | s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    versions = list(dict.fromkeys(r.get("code") for r in ev))
    for backbone in dict.fromkeys(r["backbone"] for r in ev):
        for code, method in dict.fromkeys((r.get("code"), r["method"]) for r in ev):
            runs = completed(ev, backbone=backbone, method=method, code=code)
            gains = [] if method == "source_only" else paired_gains(
                [r for r in ev if r.get("code") == code], backbone, method, "target_test_acc")
            seconds = statistics.mean(r["seconds"] for r in runs) if runs else math.nan
            label = f"{method} (code {code})" if len(versions) > 1 else method
            lines.append(
                f"| {backbone} | {label} | {fmt([r['target_test_acc'] for r in runs])} | "
                f"{fmt(gains) if gains else ''} | {verdict(gains) if gains else ''} | "
                f"{fmt([r['source_test_acc'] for r in runs])} | {fmt([r['target_test_acc_last'] for r in runs])} | "
                f"{fmt([r['target_test_acc_by'].get('im') for r in runs])} | "
                f"{fmt([r['target_test_acc_by'].get('neg_dev_risk') for r in runs])} | "
                f"{fmt([r['domain_acc_last'] for r in runs], 1.0)} | {sum(bool(r['warnings']) for r in runs)} | "
                f"{len(runs)} | {seconds:.0f} |")
    return lines


def tables(data: dict) -> str:
    """The markdown report of a records file (``{"meta": ..., "runs": [...]}``)."""
    records, meta = data["runs"], data["meta"]
    chosen = choose(records)
    failed = [r for r in records if r["status"] != "completed"]
    present = [m for m in LATER_METHODS if any(r["method"] == m for r in records)]
    later = f"; {' and '.join(present)} with their papers' defaults, never tuned" if present else ""
    measured = "; ".join(f"{m['date']} on {m['cpu']}, {m['threads']} intra-op thread(s) per run, {m['jobs']} run(s) "
                         f"at a time, {m['versions']}, {m['wall_s'] / 60:.0f} min wall"
                         for m in [*meta.get("earlier", [])[::-1], meta])
    codes = list(dict.fromkeys(r.get("code") for r in records))
    by_code = (f" Runs of {len(codes)} code versions are kept apart: a row names its version and pairs only with "
               f"source_only of the same version.") if len(codes) > 1 else ""
    text = [f"Measured {measured}. Recipe for every run: "
            f"`{' '.join(RECIPE)}`. Accuracies in %, mean ± 95% t-interval over n runs; gains are paired by "
            f"(seed, split seed).{by_code}", "",
            f"**1. Selection on the development pair `{DEV['pair']}`** (seeds/split seeds {DEV['seeds']}). Rule: "
            f"the DANN candidate whose worse backbone gains most over source_only in target *validation* accuracy "
            f"of the monitor-selected checkpoint. Chosen: **{chosen}**.", "", *selection_table(records, chosen), "",
            f"**2. Evaluation on the untouched pair `{EVAL['pair']}`** (seeds 0-4 × split seeds 0, 1; "
            f"`{' '.join(EVAL['extra'])}`), dann = the chosen candidate, nothing re-tuned{later}.", "",
            *evaluation_table(records)]
    if failed:
        text += ["", f"Failed runs ({len(failed)}): " + "; ".join(f"{folder_name(r)}: {r['error']}" for r in failed)]
    return "\n".join(text) + "\n"


def meta(args, wall: float) -> dict:
    return machine(args.threads, args.jobs, wall, args.quick)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("select", "evaluate", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="one seed, one candidate, 4 steps: a smoke run")
    parser.add_argument("--methods", type=lambda text: text.split(","), default=None,
                        help="only these methods, e.g. source_only,cdan,mcc")
    parser.add_argument("--merge", type=Path, default=None,
                        help="a records file to extend: its runs are kept (and its selection reused), the new appended")
    add_arguments(parser, "da_protocol")
    args = parser.parse_args(argv)
    if args.report is not None:
        data = load_record(args.report)
    else:
        out = runs_folder("da_protocol", args.out)
        start = time.perf_counter()
        merged = json.loads(args.merge.read_text()) if args.merge else {"runs": []}

        def run_phase(jobs: list[dict]) -> list[dict]:  # refused before its first job when --out holds others
            refuse_other_jobs(jobs, lambda j: where(j, out), args.threads)
            return run_all(jobs, lambda j: run_job(j, out, args.threads), args.jobs)

        records = run_phase(plan("select", args)) if args.phase != "evaluate" else []
        if args.phase != "select":
            previous = json.loads((out / "runs.json").read_text())["runs"] if (out / "runs.json").is_file() else []
            dev = records or [r for r in previous + merged["runs"] if r["phase"] == "select"]
            evaluated = run_phase(plan("evaluate", args, choose(dev)))
            records = (records if merged["runs"] else dev) + evaluated
        data = {"meta": meta(args, time.perf_counter() - start), "runs": merged["runs"] + records}
        if args.merge:
            data["meta"]["earlier"] = [merged["meta"], *merged["meta"].get("earlier", [])]
        save_records(data, out, args.record)
    text = tables(data) if any(r["phase"] == "evaluate" for r in data["runs"]) else \
        "\n".join(selection_table(data["runs"], choose(data["runs"]))) + "\n"
    print(text)
    if args.report is None:
        (out / "result.md").write_text(text)
    if args.write_results:
        write_section("da_protocol", text)
    return data


if __name__ == "__main__":
    cli(main)
