"""The default job on a shared CPU: alone, beside busy neighbours, and as several jobs started at once.

For each variant (environment of the jobs) it times, as wall seconds of whole ``python -m transferlab.run``
commands:

- ``alone``: the job alone ("in sequence" is ``--jobs`` × the alone median);
- ``neighbours``: the job beside ``--jobs`` CPU-bound neighbour processes (busy loops that stop on their own after
  ``--neighbour-seconds`` at the latest, and are stopped as soon as the job ends);
- ``at_once``: ``--jobs`` copies of the job started together, until the last one ends;

each ``--repeats`` times, the variants interleaved repeat by repeat; the table gives medians with their min–max.

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
from protocol import code_version  # noqa: E402

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
    """Every variant's row: ``--repeats`` of each measure, the variants interleaved repeat by repeat, so drift in the
    machine's speed hits them alike; a split variant takes its base variant's alone and neighbours figures."""
    cpus = available_cpus()
    base = [v for v in variants if v not in SPLIT_OF]
    measured = [v for v in variants if SPLIT_OF.get(v, v) in base]
    split = {v: max(1, cpus // args.jobs) if v in SPLIT_OF else None for v in measured}  # threads of a job at once
    alone, beside, at_once = ({v: [] for v in base}, {v: [] for v in base}, {v: [] for v in measured})
    for i in range(args.repeats):
        for variant in base:
            alone[variant].append(timed(job, [out / variant / f"alone{i}"], job_env(variant, None)))
        for variant in base:
            beside[variant].append(beside_neighbours(job, out / variant / f"neighbours{i}", job_env(variant, None),
                                                     args))
        for variant in measured:
            at_once[variant].append(timed(job, [out / variant / f"at_once{i}_{j}" for j in range(args.jobs)],
                                          job_env(variant, split[variant])))
    rows = []
    for variant in measured:
        same = SPLIT_OF.get(variant, variant)
        median = statistics.median(alone[same])
        near, together = statistics.median(beside[same]), statistics.median(at_once[variant])
        rows.append({"variant": variant, "env": VARIANTS[variant],
                     "threads_at_once": split[variant] or cpus,
                     "alone_s": alone[same], "alone_median_s": median, "neighbours_s": beside[same],
                     "neighbours_median_s": near, "at_once_s": at_once[variant], "at_once_median_s": together,
                     "in_sequence_s": median * args.jobs, "neighbours_ratio": near / median,
                     "at_once_ratio": together / (median * args.jobs)})
    return rows


def listed(value) -> list[float]:
    """A measure's runs (a record written before every measure was repeated holds one number)."""
    return value if isinstance(value, list) else [value]


def cell(values: list[float]) -> str:
    """The median, and the min–max when there are several runs."""
    values = listed(values)
    text = f"{statistics.median(values):.1f}"
    return text + (f" ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else "")


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def table(result: dict) -> list[str]:
    """The markdown table of a result (``--report`` rebuilds it from a saved ``result.json``)."""
    jobs, rows = result["jobs"], result["rows"]
    code = f", code {result['code']}" if result.get("code") else ""
    counts = sorted({len(listed(r[k])) for r in rows for k in ("alone_s", "neighbours_s", "at_once_s")})
    lines = [f"Measured {result['date']} on {result['cpu']}, {result['cpus_available']} CPUs available; "
             f"{result['versions']}{code}; job: `python -m transferlab.run {' '.join(result['job'])}`, wall seconds "
             f"of the whole command; {jobs} neighbours / jobs at once; each figure the median of n = "
             f"{'/'.join(map(str, counts))} run(s) of it (min–max), the variants interleaved run by run; "
             f"{jobs} in sequence = {jobs} × the alone median (not run: the same job, one after another).", "",
             "| variant | threads alone / at once | alone s | beside neighbours s | × alone (goal ≤ 3) | "
             f"{jobs} at once s | {jobs} in sequence s | at once / in sequence (goal ≤ 1) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['variant']} | {result['cpus_available']} / {r['threads_at_once']} | {cell(r['alone_s'])} "
                     f"| {cell(r['neighbours_s'])} | {r['neighbours_ratio']:.2f}: {met(r['neighbours_ratio'] <= 3)} | "
                     f"{cell(r['at_once_s'])} | {r['in_sequence_s']:.1f} | "
                     f"{r['at_once_ratio']:.2f}: {met(r['at_once_ratio'] <= 1)} |")
    alone = {r["variant"]: r["alone_median_s"] for r in rows}
    shipped = ("" if not {"default", "short_spin"} <= set(alone) else
               f" transferlab's default (`short_spin`) alone: {alone['short_spin']:.1f} s against `default`'s "
               f"{alone['default']:.1f} s, {met(alone['short_spin'] <= alone['default'])}.")
    return lines + ["", "Goals: beside neighbours ≤ 3× alone; at once / in sequence ≤ 1; transferlab's default "
                        "alone no slower than `default` (libgomp's own behaviour), judged on the medians." + shipped]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny job and one variant")
    parser.add_argument("--variants", default=None, help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=3, help="neighbours, and jobs started at once")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measure, the variants interleaved")
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
              "versions": versions(), "code": code_version(), "job": job, "jobs": args.jobs, "repeats": args.repeats,
              "quick": args.quick, "rows": rows}
    report(out, result, table(result), echo=False)
    publish("contention", result, "\n".join(table(result)), args.record, args.write_results)
    return result


if __name__ == "__main__":
    cli(main)
