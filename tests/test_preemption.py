"""Kill, pre-empt and poison runs: they stop cleanly, keep their last good checkpoint, and resume bit-exactly."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FAST, ROOT, run_cli

from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import train

# 2 epochs x 15 steps of 32 px digits; last.ckpt every 5 steps.
PARITY = [*FAST, "trainer.max_epochs=2", "trainer.limit_train_batches=15", "trainer.limit_val_batches=1",
          "test=false", "logger=none", "callbacks.evaluation_figures=null",
          "callbacks.last_checkpoint.every_n_train_steps=5"]
ENV = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}


def runs(cwd):
    return sorted((cwd / "outputs" / "runs").iterdir())


def final_weights(run):
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("strategy", [["strategy=finetune"], ["strategy=dann", "data=digits_blend",
                                                                "callbacks.domain_report.method=pca"]],
                         ids=["finetune", "dann"])
def test_sigkill_then_resume_auto_equals_an_uninterrupted_run(make_cfg, tmp_path, strategy):
    args = [*PARITY, *strategy, "+callbacks.chaos._target_=chaos.SignalAtStep", "+callbacks.chaos.step=26"]
    train(make_cfg(*args[:-2], fast=False, run="straight"))
    killed = run_cli(*args, cwd=tmp_path, env=ENV)
    assert killed.returncode == -9, killed.stderr[-3000:]
    (crashed,) = runs(tmp_path)
    assert torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 25
    train(make_cfg(*args, "resume=auto", fast=False, run="resumed"))  # same overrides: finds the killed run
    expected, got = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    differ = [k for k, v in expected.items() if not torch.allclose(got[k], v, rtol=0, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


def test_sigterm_saves_last_checkpoint_exits_143_and_resumes(tmp_path):
    args = [*PARITY, "trainer.max_epochs=1", "trainer.limit_train_batches=10",
            "+callbacks.chaos._target_=chaos.SignalAtStep", "+callbacks.chaos.step=7",
            "+callbacks.chaos.signal=SIGTERM"]
    stopped = run_cli(*args, cwd=tmp_path, env=ENV)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "stopped by a signal at global step 7" in stopped.stderr and "Traceback" not in stopped.stderr
    (run,) = runs(tmp_path)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    resumed = run_cli(*args, "resume=auto", cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert final_weights(runs(tmp_path)[1]) and torch.load(runs(tmp_path)[1] / "checkpoints" / "last.ckpt",
                                                           weights_only=True)["global_step"] == 10


@pytest.mark.parametrize("epoch", [0, 1])
def test_sigterm_during_validation_saves_last_checkpoint_and_resume_finishes(make_cfg, tmp_path, epoch):
    """Stopped in the middle of epoch ``epoch``'s validation: last.ckpt holds every training step of that epoch, the
    advice to resume is printed, and resume=auto ends where an uninterrupted run ends, with the same weights."""
    args = [*PARITY, "trainer.limit_train_batches=4", "trainer.limit_val_batches=3",
            "+callbacks.chaos._target_=chaos.SignalInValidation", f"+callbacks.chaos.epoch={epoch}",
            "+callbacks.chaos.batch=1"]
    train(make_cfg(*args[:-3], fast=False, run="straight"))
    work = tmp_path / "work"
    work.mkdir()
    stopped = run_cli(*args, cwd=work, env=ENV)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "continue with the same command and resume=auto" in stopped.stderr and "Traceback" not in stopped.stderr
    (run,) = runs(work)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4 * (epoch + 1)
    resumed = run_cli(*args, "resume=auto", cwd=work, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = final_weights(tmp_path / "straight"), final_weights(runs(work)[1])
    assert all(torch.allclose(got[k], v, rtol=0, atol=1e-6) for k, v in expected.items())


def test_resume_auto_without_a_matching_run_is_an_error(tmp_path):
    result = run_cli(*FAST, "resume=auto", cwd=tmp_path)
    assert result.returncode == 2 and "resume=auto: no checkpoints/last.ckpt" in result.stderr
    assert "Traceback" not in result.stderr


def test_nan_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg("trainer.limit_train_batches=8", "callbacks.last_checkpoint.every_n_train_steps=2",
                   "+callbacks.chaos._target_=chaos.NanAtStep", "+callbacks.chaos.step=3")
    with pytest.raises(TransferlabError, match=r"loss is nan at global step 3 "):
        train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
