"""Threads: the ``threads`` key sets torch's intra-op threads, metrics.json records them with versions and CPU, and
two runs with the same seed at the same thread count are bit-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from transferlab.contracts.checks import check_config
from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import train
from transferlab.threads import available_cpus, resolve_threads

SMALL = ["model=timm", "model.name=mobilenetv3_small_050", "model.weights=none", "data.image_size=16",
         "logger=none", "callbacks.evaluation_figures=null", "trainer.limit_train_batches=4"]


def weights(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_thread_count_is_bit_identical(make_cfg, tmp_path, threads):
    for run in ("a", "b"):
        train(make_cfg(*SMALL, f"threads={threads}", run=run))
        assert torch.get_num_threads() == threads
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert record["environment"]["threads"] == threads
    assert all(record["environment"]["versions"][name] for name in ("python", "torch", "lightning", "transferlab"))
    assert record["environment"]["cpu"] and record["environment"]["cpus_available"] == available_cpus()


def test_null_threads_follow_omp_num_threads_else_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == 3 and resolve_threads(5) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # e.g. taskset -c 0, or a SLURM cpus-per-task=1
    assert available_cpus() == 1 and resolve_threads(None) == 1


@pytest.mark.parametrize("value", ["0", "two", "1.5"])
def test_bad_threads_is_one_line(make_cfg, value):
    with pytest.raises(TransferlabError, match=f"threads={value}|threads='{value}'"):
        check_config(make_cfg(f"threads={value}"))


SPIN_CASES = [({}, ["10000", "-"]), ({"OMP_WAIT_POLICY": "ACTIVE"}, ["-", "ACTIVE"]),
              ({"GOMP_SPINCOUNT": "300000"}, ["300000", "-"])]


@pytest.mark.parametrize(("preset", "expected"), SPIN_CASES)
def test_idle_openmp_threads_spin_briefly_unless_the_environment_says_otherwise(preset, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import transferlab, os, sys; print(os.environ.get('GOMP_SPINCOUNT', '-'), "
            "os.environ.get('OMP_WAIT_POLICY', '-'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**env, **preset, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [*expected, "False"]  # set before torch (and its OpenMP runtime) is loaded
