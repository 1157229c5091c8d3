"""Benchmarks re-run as they are: each run writes a fresh folder (or ``--out``, new or empty), never needs cleaning
up, and a used ``--out`` is refused with one line and exit code 2, before any work and with nothing overwritten.

The cheapest benchmark (``multitask_cost --quick``, under a second once imported) runs in-process; only the refusal
runs as a subprocess, to see exactly what a user sees on the console.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import BENCHMARKS, load_benchmark, snapshot

from transferlab.contracts.errors import EXIT_USER_ERROR, PREFIX, TransferlabError

SCRIPTS = ["parity", "throughput", "dataload", "strategy_cost", "multitask_cost", "probe_sweep"]


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """Default benchmark folders go under ``tmp_path/outputs/benchmarks`` (``TRANSFERLAB_OUTPUTS``)."""
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs" / "benchmarks"


# --- the helper -------------------------------------------------------------------------------------------------
def test_fresh_out_default_is_a_new_timestamped_folder_every_time(outputs):
    common = load_benchmark("common")
    first, second = common.fresh_out("demo"), common.fresh_out("demo")
    assert first != second and first.parent == second.parent == outputs / "demo"
    assert all(re.fullmatch(r"\d{8}-\d{6}-\d{6}(-\d+)?", p.name) for p in (first, second))
    assert [p.name for p in first.iterdir()] == [common.COMMAND_FILE]  # claimed, nothing else yet
    assert common.fresh_out("demo", outputs / "new" / "deep") == outputs / "new" / "deep"  # created
    (outputs / "empty").mkdir()
    assert common.fresh_out("demo", outputs / "empty") == outputs / "empty"  # an empty folder is taken


def test_fresh_out_refuses_a_used_folder_in_one_line_and_writes_nothing(outputs):
    common = load_benchmark("common")
    used = common.fresh_out("demo", outputs / "run")
    (used / "result.json").write_text("[]")
    before = snapshot(used)
    for folder in (used, common.fresh_out("demo")):  # a finished run, and one just claimed by another run
        with pytest.raises(TransferlabError, match="already holds .*command.txt") as caught:
            common.fresh_out("demo", folder)
        assert "\n" not in str(caught.value) and "choose a new --out" in str(caught.value)
    assert snapshot(used) == before
    (outputs / "file").write_text("x")
    with pytest.raises(TransferlabError, match="is a file"):
        common.fresh_out("demo", outputs / "file")


# --- every script -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_refuses_a_used_out_before_any_work(name, tmp_path):
    source = (BENCHMARKS / f"{name}.py").read_text()
    assert re.search(r'if __name__ == "__main__":\s+cli\(main\)\s*$', source), "__main__ must go through cli"
    (tmp_path / "result.json").write_text("[]")
    before = snapshot(tmp_path)
    with pytest.raises(TransferlabError, match="already holds result.json"):
        load_benchmark(name).main(["--quick", "--out", str(tmp_path)])
    assert snapshot(tmp_path) == before


def test_multitask_cost_reruns_into_new_folders_and_refuses_a_used_out(outputs, tmp_path, monkeypatch, capsys):
    bench, common = load_benchmark("multitask_cost"), load_benchmark("common")
    monkeypatch.setattr(sys, "argv", ["multitask_cost.py", "--quick"])
    with pytest.raises(SystemExit) as done:  # what `python benchmarks/multitask_cost.py --quick` does
        common.cli(bench.main)
    assert done.value.code == 0
    bench.main(["--quick"])  # again, as it is
    runs = sorted((outputs / "multitask_cost").iterdir())
    assert len(runs) == 2 and all((r / "result.json").is_file() and (r / "result.md").is_file() for r in runs)
    printed = capsys.readouterr().out
    assert all(f"results: {r}\n" in printed for r in runs)  # where each run went is said

    out = tmp_path / "mine"
    bench.main(["--quick", "--out", str(out)])
    assert {p.name for p in out.iterdir()} == {"command.txt", "result.json", "result.md"}
    before = snapshot(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    again = subprocess.run([sys.executable, str(BENCHMARKS / "multitask_cost.py"), "--quick", "--out", str(out)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    lines = again.stderr.splitlines()
    assert again.returncode == EXIT_USER_ERROR and len(lines) == 1, again.stderr
    assert lines[0].startswith(PREFIX) and str(out) in lines[0] and "already holds" in lines[0]
    assert again.stdout == ""
    assert snapshot(out) == before


# --- the result-generating benchmarks: a used --out is continued, never mixed ----------------------------------
def finished(run_dir, job: dict | None) -> None:
    """A completed run in ``run_dir`` (metrics.json), made by ``job`` (job.json; None: written before the file)."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"status": "completed", "seconds": 1.0}')
    if job is not None:
        (run_dir / "job.json").write_text(json.dumps(job))


def test_a_finished_run_is_reused_only_for_the_same_command_and_threads(tmp_path):
    protocol = load_benchmark("protocol")
    job = protocol.job_of(["strategy=finetune", "seed=0"], threads=1)
    finished(tmp_path / "same", job)
    assert protocol.finished_run(tmp_path / "same", job)["seconds"] == 1.0
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "metrics.json").write_text('{"status": "failed"}')
    assert protocol.finished_run(tmp_path / "unfinished", job) is None  # started again by run()
    assert protocol.finished_run(tmp_path / "absent", job) is None
    finished(tmp_path / "unknown", None)
    others = [protocol.job_of(["strategy=finetune", "seed=0", "trainer.max_epochs=1"], threads=1),  # --quick's
              protocol.job_of(["strategy=finetune", "seed=0"], threads=2),
              protocol.job_of(["strategy=finetune", "seed=0"], threads=1, script=BENCHMARKS / "torch_loop.py")]
    for run_dir, other in [(tmp_path / "same", o) for o in others] + [(tmp_path / "unknown", job)]:
        with pytest.raises(TransferlabError, match=f"--out {tmp_path}: {run_dir.name} holds a finished run of "
                                                   "another job") as caught:
            protocol.finished_run(run_dir, other)
        assert "\n" not in str(caught.value)


def test_matrix_quick_continues_its_out_and_refuses_a_full_run_there_before_any_job(tmp_path):
    """The digits task of ``matrix.py --quick`` (2 rows and a loop job, in 3 processes): the record's tables are the
    printed ones; the same command on the same --out re-runs nothing; without --quick it is refused, nothing touched."""
    bench, out = load_benchmark("matrix"), tmp_path / "out"
    quick = ["--quick", "--tasks", "digits", "--jobs", "2", "--out", str(out)]
    data = bench.main([*quick, "--record", str(tmp_path / "runs.json")])
    assert {(r["runner"], r["status"]) for r in data["runs"]} == {("transferlab", "completed"), ("loop", "completed")}
    assert all(r["threads"] == 1 and 0 <= r["test"]["test/acc"] <= 1 for r in data["runs"])
    assert bench.tables(json.loads((tmp_path / "runs.json").read_text())) == bench.tables(data)
    again = bench.main(quick)
    assert [r["seconds"] for r in again["runs"]] == [r["seconds"] for r in data["runs"]]
    before = snapshot(out)
    with pytest.raises(TransferlabError, match="holds a finished run of another job"):
        bench.main(quick[1:])  # the full digits rows, 5 seeds each
    assert snapshot(out) == before
