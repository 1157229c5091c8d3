"""A sweep never loses work: killed half way and started again with the same command, it skips the jobs that
completed (their metrics are reused) and continues the interrupted one from its last.ckpt, to the weights an
uninterrupted run reaches; with a fixed ``hydra.sweep.dir`` it does so in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

from transferlab.contracts.checks import check_config
from transferlab.contracts.errors import TransferlabError
from transferlab.resume import comparable, earlier_sweep_job, find_last_checkpoint

TINY = ["model=timm", "model.name=mobilenetv3_small_050", "model.weights=none", "data.image_size=16",
        "data.batch_size=16", "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false",
        "trainer.max_epochs=1", "trainer.limit_train_batches=6", "trainer.limit_val_batches=2", "test=false",
        "logger=none", "callbacks.evaluation_figures=null", "callbacks.lr_monitor=null",
        "++callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false", "callbacks.last_checkpoint.every_n_train_steps=2",
        "+callbacks.chaos._target_=chaos.SignalInSweepJob"]
SWEEP = ["-m", "seed=0,1,2", *TINY]
QUIET = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}  # tests/ holds chaos.py
KILL_JOB_1 = {**QUIET, "TRANSFERLAB_CHAOS_JOB": "SIGKILL@3@1"}


def jobs(sweep: Path) -> dict[int, dict]:
    return {int(job.name): json.loads((job / "metrics.json").read_text())
            for job in sweep.iterdir() if (job / "metrics.json").is_file()}


def weights(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True)["state_dict"]


def assert_same_weights(got: Path, expected: Path) -> None:
    a, b = weights(got), weights(expected)
    differ = [k for k, v in b.items() if not torch.allclose(a[k].float(), v.float(), rtol=0, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


@pytest.fixture(scope="module")
def straight_seed1(tmp_path_factory) -> Path:
    """Job ``seed=1`` run once without interruption: the weights a continued job must reach."""
    work = tmp_path_factory.mktemp("straight")
    done = run_cli("seed=1", *TINY, "hydra.run.dir=outputs/straight", cwd=work, env=QUIET)
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "outputs" / "straight" / "checkpoints" / "last.ckpt"


def test_a_killed_sweep_rerun_skips_completed_jobs_and_continues_the_interrupted_one(tmp_path, straight_seed1):
    killed = run_cli(*SWEEP, cwd=tmp_path, env=KILL_JOB_1)
    assert killed.returncode == -9, killed.stderr[-3000:]
    (first,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert sorted(jobs(first)) == [0] and (first / "1" / "checkpoints" / "last.ckpt").is_file()
    assert not (first / "2").exists()

    again = run_cli(*SWEEP, cwd=tmp_path, env=QUIET)
    assert again.returncode == 0, again.stderr[-3000:]
    second = max((tmp_path / "outputs" / "sweeps").iterdir())
    assert second != first
    done = jobs(second)
    assert sorted(done) == [0, 1, 2] and {p["status"] for p in done.values()} == {"completed"}
    assert done[0]["reused_from"] == str((first / "0").resolve())  # skipped: nothing trained
    assert done[0]["monitor_value"] == jobs(first)[0]["monitor_value"]
    assert not (second / "0" / "checkpoints").exists()
    assert "reused_from" not in done[1] and "reused_from" not in done[2]
    assert f"this job completed in {(first / '0').resolve()}" in again.stdout
    assert_same_weights(second / "1" / "checkpoints" / "last.ckpt", straight_seed1)  # continued, not restarted
    summary = (second / "summary.csv").read_text()
    assert summary.count("\n") >= 4 and "completed" in summary

    third = run_cli(*SWEEP, cwd=tmp_path, env=QUIET)  # everything done: every job reused, each from its trainer
    assert third.returncode == 0, third.stderr[-3000:]
    latest = max((tmp_path / "outputs" / "sweeps").iterdir())
    reused = {num: payload["reused_from"] for num, payload in jobs(latest).items()}
    assert reused == {0: str((first / "0").resolve()), 1: str((second / "1").resolve()),
                      2: str((second / "2").resolve())}

    fresh = run_cli("-m", "sweep_resume=false", "seed=0", *TINY, cwd=tmp_path, env=QUIET)  # job 0 again
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert not any("reused_from" in payload for payload in jobs(max((tmp_path / "outputs" / "sweeps").iterdir()))
                   .values())


def test_a_fixed_sweep_dir_is_continued_in_place(tmp_path, straight_seed1):
    fixed = [*SWEEP, "hydra.sweep.dir=outputs/my_sweep"]
    killed = run_cli(*fixed, cwd=tmp_path, env=KILL_JOB_1)
    assert killed.returncode == -9, killed.stderr[-3000:]
    sweep = tmp_path / "outputs" / "my_sweep"
    before = (sweep / "0" / "metrics.json").read_bytes()

    again = run_cli(*fixed, cwd=tmp_path, env=QUIET)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (sweep / "0" / "metrics.json").read_bytes() == before  # the completed job is left as it was
    assert sorted(jobs(sweep)) == [0, 1, 2]
    assert_same_weights(sweep / "1" / "checkpoints" / "last.ckpt", straight_seed1)


def write_job(folder: Path, overrides: list[str], status: str | None, last: bool = False) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status:
        (folder / "metrics.json").write_text(json.dumps({"status": status, "monitor_value": 0.5}))
    if last:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    return folder


def test_earlier_job_is_matched_on_overrides_and_a_completed_attempt_wins(tmp_path):
    log = tmp_path / "outputs"
    write_job(log / "sweeps" / "a" / "0", ["seed=0", "optimizer.lr=0.1"], "interrupted", last=True)
    write_job(log / "sweeps" / "b" / "3", ["optimizer.lr=0.1", "seed=0", "resume=auto"], "completed")
    write_job(log / "sweeps" / "b" / "4", ["seed=1", "optimizer.lr=0.1"], "completed")
    write_job(log / "sweeps" / "c" / "0", ["seed=2", "optimizer.lr=0.1"], "failed", last=True)
    here = log / "sweeps" / "new" / "0"

    found = earlier_sweep_job(log, here, ["seed=0", "optimizer.lr=0.1"])
    assert found.folder == log / "sweeps" / "b" / "3" and found.completed["status"] == "completed"
    found = earlier_sweep_job(log, here, ["optimizer.lr=0.1", "seed=2", "sweep_resume=true"])
    assert found.completed is None and found.last == log / "sweeps" / "c" / "0" / "checkpoints" / "last.ckpt"
    assert earlier_sweep_job(log, here, ["seed=3", "optimizer.lr=0.1"]) is None
    assert earlier_sweep_job(log, here, ["seed=0"]) is None  # a subset of the overrides is another job
    assert comparable(["resume=auto", "b=1", "sweep_resume=false", "a=2"]) == ["a=2", "b=1"]
    # resume=auto (single runs too) finds sweep jobs' checkpoints
    assert find_last_checkpoint(log, ["seed=0", "optimizer.lr=0.1"]) == log / "sweeps" / "a" / "0" / "checkpoints" \
        / "last.ckpt"


def test_sweep_resume_must_be_true_or_false(make_cfg):
    with pytest.raises(TransferlabError, match="sweep_resume='maybe' must be true or false"):
        check_config(make_cfg("sweep_resume=maybe"))
