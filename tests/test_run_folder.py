"""A run folder's integrity: one owner at a time, atomic writes, a full disk as one line, strict-JSON metrics."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import FAST, ROOT, run_in_process
from test_bad_inputs import setup_case

from transferlab.atomic import AtomicCheckpointIO, atomic_open
from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import load_config, strict_json, train
from transferlab.run import main

EXTRA = ["logger=none", "callbacks.evaluation_figures=null", "test=false"]
QUICK = [*FAST, *EXTRA]


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"half a checkpoint")
        raise RuntimeError("killed mid-write")
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left behind


def test_a_full_disk_is_one_error_naming_the_file(tmp_path):
    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(TransferlabError, match=r"no space left on device while writing .*best.ckpt"), \
            atomic_open(tmp_path / "best.ckpt") as handle:
        full(handle)
    assert not list(tmp_path.iterdir())


def test_full_disk_during_a_run_leaves_no_truncated_checkpoint_and_a_failed_metrics_json(tmp_path, monkeypatch):
    setup_case("full-disk", tmp_path, tmp_path, monkeypatch)  # checkpoint writes fail half way (tests/test_bad_inputs)
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process(main, *QUICK, "trainer.limit_val_batches=1", f"hydra.run.dir={tmp_path / 'run'}",
                               monkeypatch=monkeypatch)
    assert code == 2 and "no space left on device while writing" in err and "Traceback" not in err, err[-3000:]
    assert not list((tmp_path / "run").rglob("*.ckpt")) and not list((tmp_path / "run").rglob(".*.tmp"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "no space left" in metrics["error"]


def test_metrics_json_is_strict_json():
    assert strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}}) == \
        {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}


def test_a_run_folder_owned_by_a_live_process_is_refused_naming_its_pid(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        code, err = run_in_process(main, *QUICK, f"hydra.run.dir={run}", monkeypatch=monkeypatch)
    finally:
        os.close(fd)
    assert code == 2 and f"{run} is in use by another run (PID 4242)" in err, err[-2000:]
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written


def test_a_stale_lock_of_a_killed_run_is_taken_over(make_cfg, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text("999999\n")  # its process is gone: no flock is held
    train(make_cfg(*EXTRA))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"
    assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())


def test_two_processes_started_together_on_one_folder_one_runs_one_is_refused(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "transferlab.run", *QUICK, f"hydra.run.dir={tmp_path / 'run'}"]
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert f"{tmp_path / 'run'}" in refused and ("in use by another run (PID" in refused
                                                  or "already holds a run" in refused), refused[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed"


def test_load_config_refuses_a_folder_holding_a_run_before_writing_anything(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("earlier: run\n")
    (run / "metrics.json").write_text('{"status": "completed"}')
    with pytest.raises(TransferlabError, match="already holds a run"):
        load_config(["trainer.max_epochs=1"], output_dir=run)
    assert (run / "config.yaml").read_text() == "earlier: run\n"
    fresh = load_config([], output_dir=tmp_path / "fresh")
    assert (tmp_path / "fresh" / "config.yaml").is_file() and fresh.paths.output_dir == str(tmp_path / "fresh")
