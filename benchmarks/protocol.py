"""What the result-generating benchmarks (``matrix.py``, ``da_protocol.py``) share: running one
``python -m transferlab.run`` job in its own process, statistics over seeds, the machine record, and the generated
sections of benchmarks/RESULTS.md (between ``<!-- name:begin -->`` and ``<!-- name:end -->``, never typed).

Imports no torch, so a driver that mostly waits on its jobs stays light.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's transferlab
    sys.path.insert(0, str(ROOT))

from transferlab.analysis.sweep_configs import spread  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def code_version() -> str:
    """The commit the runs measure (``+`` when ``transferlab/`` has uncommitted changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if git("status", "--porcelain", "--",
                                                                           "transferlab") else "")


JOB_FILE = "job.json"  # beside a finished run's metrics.json: the command and threads that made it


def job_of(overrides: list[str], threads: int, script: Path | None = None) -> dict:
    """What makes a run of a job the same run: its command (script and overrides) and its intra-op threads."""
    return {"command": ["transferlab.run" if script is None else Path(script).name, *overrides], "threads": threads}


def finished_run(run_dir: Path, job: dict) -> dict | None:
    """The metrics.json of a run of ``job`` that completed in ``run_dir`` before, None when there is none; a completed
    run of another job there (other overrides, threads or ``--quick``) is refused in one line (``TransferlabError``),
    so a continued ``--out`` never mixes two recipes in one table."""
    from transferlab.contracts.errors import TransferlabError

    metrics_file = run_dir / "metrics.json"
    earlier = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if earlier.get("status") != "completed":
        return None
    job_file = run_dir / JOB_FILE
    if not job_file.is_file() or json.loads(job_file.read_text()) != job:
        raise TransferlabError(f"--out {run_dir.parent}: {run_dir.name} holds a finished run of another job (other "
                               "overrides, threads or --quick); give a new --out, or the same options as before")
    return earlier


def refuse_other_jobs(jobs: list[dict], place, threads: int) -> None:
    """Refuse, before any job starts, an ``--out`` whose finished runs were made by other jobs than ``jobs`` (each
    with its ``overrides``; ``place(job)`` is its run folder and script, as ``run`` is given them)."""
    for job in jobs:
        run_dir, script = place(job)
        finished_run(run_dir, job_of(job["overrides"], threads, script))


def run(overrides: list[str], run_dir: Path, threads: int,
        script: Path | None = None) -> tuple[dict | None, str | None]:
    """One ``python -m transferlab.run`` (or ``script``, which takes ``--run-dir``) in its own process with ``threads``
    intra-op threads, writing ``run_dir``; a finished run of the same job there is reused (one of another job
    refused), an unfinished one started again. Returns (metrics.json, None), or (None, the error's last line)."""
    from transferlab.atomic import write_text

    job = job_of(overrides, threads, script)
    earlier = finished_run(run_dir, job)
    if earlier is not None:
        return earlier, None
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = (["-m", "transferlab.run", *overrides, f"hydra.run.dir={run_dir}"] if script is None
               else [str(script), "--run-dir", str(run_dir), *overrides])
    done = subprocess.run([sys.executable, *command, f"threads={threads}"], cwd=run_dir.parent, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    write_text(run_dir / JOB_FILE, json.dumps(job, indent=1) + "\n")
    return json.loads((run_dir / "metrics.json").read_text()), None


def cli(main) -> None:
    """A benchmark's ``__main__``: ``main(sys.argv[1:])``; a user error (a used ``--out``, a missing record, a full
    disk, a bad override) is one line on stderr, ``transferlab: error: ...``, and exit code 2; a bug keeps its
    traceback."""
    from transferlab.entry import run_script

    def script(argv: list[str]) -> int:
        main(argv)
        return 0

    sys.exit(run_script(script))


def folder_name(text: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in ".-" else "_" for c in text)


def add_arguments(parser, name: str) -> None:
    """The options every result-generating benchmark takes."""
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per run")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"runs folder, continued when its finished runs are of the same jobs, refused when of "
                             f"others (default: a new outputs/benchmarks/{name}/<time>)")
    add_record_arguments(parser, name)


def add_record_arguments(parser, name: str) -> None:
    """``--record``, ``--report`` and ``--write-results``: a benchmark's result as a committed record, and its
    section of RESULTS.md generated from it."""
    parser.add_argument("--record", type=Path, default=None,
                        help=f"also write the result to this file (committed: benchmarks/results/{name}.json)")
    parser.add_argument("--report", type=Path, default=None,
                        help="measure nothing: rebuild the table from this record")
    parser.add_argument("--write-results", action="store_true",
                        help=f"put the table into the {name} section of benchmarks/RESULTS.md")


def load_record(path: Path):
    """A record written by ``--record``; a missing or unreadable one is one line (``TransferlabError``)."""
    from transferlab.contracts.errors import TransferlabError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise TransferlabError(f"--report {path}: cannot read the record ({type(error).__name__}); give a file "
                               "written by --record, e.g. under benchmarks/results/") from None


def republish(name: str, args, render):
    """With ``--report FILE``: the record, its rendering printed and (``--write-results``) put into RESULTS.md,
    nothing measured; otherwise None (the caller measures)."""
    if args.report is None:
        return None
    result = load_record(args.report)
    publish(name, result, render(result), None, args.write_results)
    return result


def publish(name: str, result, text: str, record: Path | None, write_results: bool) -> None:
    """Print ``text`` (the markdown rendering of ``result``); write ``result`` to ``record`` and ``text`` into
    ``name``'s section of RESULTS.md when asked, each atomically."""
    from transferlab.atomic import write_text

    text = text if text.endswith("\n") else text + "\n"
    print(text, end="")
    if record is not None:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        write_text(Path(record), json.dumps(result, indent=1) + "\n")
    if write_results:
        write_section(name, text)


def runs_folder(name: str, out: Path | None) -> Path:
    """``out``, or a new timestamped ``outputs/benchmarks/<name>/<time>``; created."""
    out = out or ROOT / "outputs" / "benchmarks" / name / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_all(jobs: list[dict], run_job, parallel: int) -> list[dict]:
    """``run_job(job)`` for every job, ``parallel`` at a time, records in the jobs' order."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(run_job, jobs))


def save_records(data: dict, out: Path, record: Path | None) -> None:
    """``<out>/runs.json`` and, when given, the ``record`` copy, written atomically."""
    from transferlab.atomic import write_text

    text = json.dumps(data, indent=1)
    write_text(out / "runs.json", text)
    if record:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text(record, text)


# --- statistics ---------------------------------------------------------------------------------------------------
def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of the 95% t-interval (nan for n < 2), and n, over the finite values (the sweep summary's
    ``spread``)."""
    result = spread([float(v) for v in values if v is not None and math.isfinite(v)])
    return (math.nan if result["mean"] is None else result["mean"],
            math.nan if result["ci95"] is None else result["ci95"], result["n"])


def fmt(values, scale: float = 100.0) -> str:
    """``mean ± half-width`` (in % by default), the mean alone for n = 1, ``n/a`` for none."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "n/a"
    return f"{mean * scale:.1f} ± {half * scale:.1f}" if n > 1 else f"{mean * scale:.1f}"


def verdict(gains) -> str:
    """Whether the 95% interval of paired gains excludes zero."""
    mean, half, n = mean_ci(gains)
    if n < 2 or math.isnan(half):
        return "n < 2"
    if mean - half > 0:
        return "significant gain"
    if mean + half < 0:
        return "significant loss"
    return "no significant gain"


# --- the record of the machine ------------------------------------------------------------------------------------
def machine(threads: int, jobs: int, wall: float, quick: bool) -> dict:
    """Date, CPU, threads per run, runs at a time, versions and wall time: what a table's figures depend on."""
    from transferlab.threads import cpu_model, versions_line

    return {"date": datetime.now().strftime("%Y-%m-%d"), "cpu": f"{cpu_model()} ({os.cpu_count()} CPUs)",
            "threads": threads, "jobs": jobs, "wall_s": round(wall, 1), "quick": quick, "versions": versions_line()}


# --- generated sections of RESULTS.md -----------------------------------------------------------------------------
def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def section(name: str, page: str | None = None) -> str:
    """The text between ``name``'s markers in RESULTS.md (or ``page``)."""
    from transferlab.contracts.errors import TransferlabError

    begin, end = markers(name)
    page = RESULTS.read_text() if page is None else page
    if begin not in page or end not in page:
        raise TransferlabError(f"{RESULTS} has no {begin} ... {end} section: add the two lines where the table goes")
    return page.split(begin, 1)[1].split(end, 1)[0].removeprefix("\n")


def write_section(name: str, text: str) -> None:
    """Replace ``name``'s section of RESULTS.md with ``text`` (atomically)."""
    from transferlab.atomic import write_text

    begin, end = markers(name)
    page = RESULTS.read_text()
    section(name, page)  # the markers must be there
    head, rest = page.split(begin, 1)
    write_text(RESULTS, f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}")
