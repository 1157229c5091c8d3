"""DANN from the command line: bad input, and DDP on CPU against one process."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from conftest import run_cli
from fakes import make_image_tree
from omegaconf import OmegaConf

from transferlab.experiment import build
from transferlab.heads import dann_lambda


@pytest.fixture
def folders(tmp_path):
    made = {name: make_image_tree(tmp_path / name, classes=classes, per_class=6, size=16, modes=("RGB",))
            for name, classes in [("source", ("a", "b")), ("target", ("a", "c"))]}
    (tmp_path / "empty").mkdir()
    return {**made, "empty": tmp_path / "empty"}


@pytest.mark.parametrize("args,expected", [
    (["data=domain_pair", "data.source={source}", "data.target={target}"], "source and target class names differ"),
    (["data=domain_pair", "data.source={source}", "data.target={empty}"], "has no images"),
    (["data=digits"], "needs data with a target domain"),
])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, folders, args, expected):
    args = [a.format(**folders) for a in args]
    result = run_cli("strategy=dann", *args, "debug=fdr", "data.num_workers=0", cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 30


DDP = ["strategy=dann", "data=digits_blend", "data.batch_size=8", "trainer.max_epochs=1",
       "trainer.limit_train_batches=3", "trainer.limit_val_batches=null", "trainer.limit_test_batches=2",
       "trainer.precision=32", "trainer.deterministic=true", "callbacks.domain_report=null",
       "callbacks.validator_selection=null", "callbacks.evaluation_figures=null", "logger=none"]


def test_ddp_on_cpu_agrees_with_one_process(tmp_path, make_cfg):
    """Agreement means: lambda at the last step is the one-process value for the same global step (it depends only
    on global_step / total steps, and total steps per rank equal one process's with the same limit), and the
    validators DDP computed from gathered outputs equal those one process computes on the same weights (same
    samples: 180 val images split evenly, no padding); accuracies exactly, the rest to float tolerance."""
    run = tmp_path / "ddp"
    result = run_cli(*DDP, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                     "channels_last=false", "callbacks.rich_progress_bar=null", f"hydra.run.dir={run}",
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["dann/lambda"] == pytest.approx(dann_lambda(2 / 3), rel=1e-6)
    _, datamodule, module, trainer = build(make_cfg(*DDP))
    trainer.validate(module, datamodule=datamodule, ckpt_path=str(run / "checkpoints" / "last.ckpt"), verbose=False)
    single = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("val/acc", "val/target_acc_oracle"):
        assert metrics[key] == single[key], key
    for key in ("val/im", "val/snd", "val/neg_dev_risk"):
        assert metrics[key] == pytest.approx(single[key], rel=1e-3, abs=1e-4), key


HEADLINE = ["model=resnet50", "strategy=dann"]  # the command the README leads with, as a user types it
QUIET = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "data.image_size=32", "data.batch_size=8", "data.validator_samples=16",
         "callbacks.domain_report.max_samples=16", "logger=none", "callbacks.rich_progress_bar=null",
         "+trainer.enable_progress_bar=false"]


def test_headline_command_offline_is_one_line_naming_the_packaged_model_and_the_file(tmp_path):
    home = tmp_path / "torch_home"
    result = run_cli(*HEADLINE, cwd=tmp_path, env={"TORCH_HOME": str(home)}, timeout=300)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    expected = home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert line.startswith("transferlab: error: ImageNet weights for resnet50 are not in ") and str(expected) in line
    assert "model=efficientnet_lite0" in line and "download.pytorch.org/models/resnet50-11ad3fa6.pth" in line
    assert "Downloading" not in result.stdout + result.stderr


def test_headline_command_with_weights_in_the_hub_cache_runs_dann_on_the_default_pair(tmp_path):
    home = tmp_path / "torch_home"
    file = home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"  # where torchvision looks, in its true format
    file.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet50().state_dict(), file)
    result = run_cli(*HEADLINE, *QUIET, "hydra.run.dir=run", cwd=tmp_path, env={"TORCH_HOME": str(home)})
    assert result.returncode == 0, result.stderr[-3000:]
    config = OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")
    assert config.data._target_.endswith("DigitsBlendDataModule") and config.model.name == "resnet50"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and set(metrics["test"]) >= {"test/source_acc", "test/target_acc"}


def test_source_only_runs_with_no_other_override(tmp_path):
    result = run_cli("strategy=source_only", *QUIET, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"
