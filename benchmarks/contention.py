"""The default job on a shared CPU: alone, beside busy neighbours, and as several jobs started at once.

For each variant (environment of the jobs) it times, as wall seconds of whole ``python -m transferlab.run``
commands:

- ``alone``: the job ``--repeats`` times, one after another ("in sequence" is ``--jobs`` × their median);
- ``neighbours``: the job beside ``--jobs`` CPU-bound neighbour processes (busy loops that stop on their own after
  ``--neighbour-seconds`` at the latest, and are stopped as soon as the job ends);
- ``at_once``: ``--jobs`` copies of the job started together, until the last one ends.

Variants (``--variants``): ``default`` is libgomp's own behaviour, what runs had before transferlab set anything
(an idle OpenMP thread spins ~300,000 iterations before it sleeps); ``passive`` (``OMP_WAIT_POLICY=PASSIVE``) sleeps
at once; ``short_spin`` (``GOMP_SPINCOUNT=10000``) spins briefly; ``short_spin_split`` also gives each of the jobs
started at once ``threads = CPUs // jobs`` (as joblib's parallel sweeps do). Goals: ``neighbours / alone <= 3``,
``at_once / (jobs x alone) <= 1``, and the chosen default alone no slower than ``default``.

    python benchmarks/contention.py                    # trainer.max_epochs=2 on digits, 3 neighbours / 3 jobs
    python benchmarks/contention.py --quick            # a tiny job, one variant: a smoke run
    python benchmarks/contention.py --report benchmarks/results/contention.json --write-results   # the table only

Each run writes into a new ``outputs/benchmarks/contention/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, add_record_arguments, cli, fresh_out, publish, report, republish, versions  # noqa: E402

from transferlab.threads import available_cpus, cpu_model  # noqa: E402

JOB = ["trainer.max_epochs=2"]
QUICK_JOB = ["model=timm", "model.name=mobilenetv3_small_050", "model.weights=none", "data.image_size=16",
             "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false",
             "logger=none", "callbacks.evaluation_figures=null"]
VARIANTS = {  # the jobs' environment; "split" variants give each job started at once CPUs // jobs threads
    "default": {"GOMP_SPINCOUNT": "300000"},  # libgomp's own default: an idle thread spins this long, then sleeps
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},  # idle threads sleep at once
    "short_spin": {"GOMP_SPINCOUNT": "10000"},  # a short spin, then sleep
    "short_spin_split": {"GOMP_SPINCOUNT": "10000"},
}
SPLIT_OF = {"short_spin_split": "short_spin"}  # same jobs alone and beside neighbours: measured once
BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


def job_env(variant: str, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")}
    env.update(VARIANTS[variant], PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))  # transferlab then sets nothing
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def start_job(job: list[str], folder: Path, env: dict) -> subprocess.Popen:
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = open(folder.with_suffix(".log"), "w")  # noqa: SIM115 (closed with the process, in wait_all)
    return subprocess.Popen([sys.executable, "-m", "transferlab.run", *job, f"hydra.run.dir={folder}"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(f"a benchmark job failed (exit {process.returncode}): see {process.args[-1]}.log")


def timed(job: list[str], folders: list[Path], env: dict) -> float:
    """Wall seconds from starting the jobs in ``folders`` together to the end of the last one."""
    start = time.perf_counter()
    wait_all([start_job(job, folder, env) for folder in folders])
    return time.perf_counter() - start


def beside_neighbours(job: list[str], folder: Path, env: dict, args) -> float:
    neighbours = [subprocess.Popen([sys.executable, "-c", BUSY, str(args.neighbour_seconds)])
                  for _ in range(args.jobs)]
    try:
        return timed(job, [folder], env)
    finally:
        for process in neighbours:
            process.kill()
            process.wait()


def measure(variants: list[str], args, job: list[str], out: Path) -> list[dict]:
    """Every variant's row. The alone runs of all variants are interleaved (repeat by repeat), so drift in the
    machine's speed hits them alike; a split variant takes its base variant's alone and neighbours figures."""
    cpus = available_cpus()
    base = [v for v in variants if v not in SPLIT_OF]
    alone = {v: [] for v in base}
    for i in range(args.repeats):
        for variant in base:
            alone[variant].append(timed(job, [out / variant / f"alone{i}"], job_env(variant, None)))
    beside = {v: beside_neighbours(job, out / v / "neighbours", job_env(v, None), args) for v in base}
    rows = []
    for variant in variants:
        same = SPLIT_OF.get(variant, variant)
        if same not in alone:
            continue
        split = max(1, cpus // args.jobs) if variant in SPLIT_OF else None
        at_once = timed(job, [out / variant / f"at_once{i}" for i in range(args.jobs)], job_env(variant, split))
        median = statistics.median(alone[same])
        rows.append({"variant": variant, "env": VARIANTS[variant], "threads_at_once": split or cpus,
                     "alone_s": alone[same], "alone_median_s": median, "neighbours_s": beside[same],
                     "at_once_s": at_once, "in_sequence_s": median * args.jobs,
                     "neighbours_ratio": beside[same] / median, "at_once_ratio": at_once / (median * args.jobs)})
    return rows


def table(result: dict) -> list[str]:
    """The markdown table of a result (``--report`` rebuilds it from a saved ``result.json``)."""
    jobs = result["jobs"]
    lines = [f"Measured {result['date']} on {result['cpu']}, {result['cpus_available']} CPUs available; "
             f"{result['versions']}; job: `python -m transferlab.run {' '.join(result['job'])}`, wall seconds of the "
             f"whole command; {jobs} neighbours / jobs at once; alone = median of {result['repeats']}.", "",
             "| variant | threads alone / at once | alone s | beside neighbours s (× alone) | "
             f"{jobs} at once s | {jobs} in sequence s | at once / in sequence |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {result['cpus_available']} / {r['threads_at_once']} | "
                     f"{r['alone_median_s']:.1f} | {r['neighbours_s']:.1f} ({r['neighbours_ratio']:.2f}×) | "
                     f"{r['at_once_s']:.1f} | {r['in_sequence_s']:.1f} | {r['at_once_ratio']:.2f} |")
    return lines + ["", "Goals: beside neighbours ≤ 3× alone; at once / in sequence ≤ 1; transferlab's default "
                        "alone no slower than `default` (libgomp's own behaviour)."]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny job and one variant")
    parser.add_argument("--variants", default=None, help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=3, help="neighbours, and jobs started at once")
    parser.add_argument("--repeats", type=int, default=2, help="alone runs (one after another)")
    parser.add_argument("--neighbour-seconds", type=float, default=900, help="the longest a neighbour busy-loops")
    add_out_argument(parser, "contention")
    add_record_arguments(parser, "contention")
    args = parser.parse_args(argv)
    result = republish("contention", args, lambda record: "\n".join(table(record)))
    if result is not None:
        return result
    if args.quick:
        args.repeats, args.variants = 1, args.variants or "passive"  # a smoke run of every code path
    variants = (args.variants or ",".join(VARIANTS)).split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    out = fresh_out("contention", args.out)
    job = QUICK_JOB if args.quick else JOB
    rows = measure(variants, args, job, out)
    result = {"date": datetime.now().strftime("%Y-%m-%d"), "cpu": cpu_model(), "cpus_available": available_cpus(),
              "versions": versions(), "job": job, "jobs": args.jobs, "repeats": args.repeats, "quick": args.quick,
              "rows": rows}
    report(out, result, table(result), echo=False)
    publish("contention", result, "\n".join(table(result)), args.record, args.write_results)
    return result


if __name__ == "__main__":
    cli(main)
