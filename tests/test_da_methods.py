"""CDAN+E and MCC as strategies: they train on real images of unequal domains, log their losses, run under bf16,
use the randomised map where the paper does, and a SIGKILL mid-epoch resumes to the uninterrupted run's weights."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT, run_cli
from fakes import make_image_tree

from transferlab.experiment import build, train
from transferlab.losses import MultilinearMap, RandomizedMultilinearMap
from transferlab.strategies import CDAN, MCC, DomainAdaptation

FAST_DA = ["data=digits_blend", "callbacks.domain_report=null", "callbacks.validator_selection=null",
           "callbacks.evaluation_figures=null", "logger=none", "trainer.limit_train_batches=3",
           "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
ENV = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}


def fit(cfg):
    _, datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


@pytest.mark.parametrize("strategy,cls,logged", [("cdan", CDAN, "domain/loss"), ("mcc", MCC, "mcc/loss")])
def test_each_method_trains_and_logs_its_loss(make_cfg, strategy, cls, logged):
    module, trainer = fit(make_cfg(f"strategy={strategy}", *FAST_DA))
    assert type(module) is cls and isinstance(module, DomainAdaptation)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics[logged]) and torch.isfinite(metrics["train/class_loss"])
    assert trainer.global_step == 3 and "val/acc" in metrics and "val/target_acc_oracle" in metrics


def test_mcc_has_no_discriminator_and_cdan_conditions_on_predictions(make_cfg):
    _, _, mcc, _ = build(make_cfg("strategy=mcc", *FAST_DA))
    assert not any("discriminator" in name for name, _ in mcc.named_parameters())
    _, _, cdan, _ = build(make_cfg("strategy=cdan", *FAST_DA))  # bottleneck 256 x 10 classes = 2,560 <= 4,096
    assert isinstance(cdan.adversary.map, MultilinearMap) and cdan.discriminator[0].in_features == 2560
    _, _, wide, _ = build(make_cfg("strategy=cdan", "strategy.bottleneck_dim=512", *FAST_DA))
    assert isinstance(wide.adversary.map, RandomizedMultilinearMap) and wide.discriminator[0].in_features == 1024


@pytest.mark.parametrize("strategy,logged", [("cdan", "domain/loss"), ("mcc", "mcc/loss")])
def test_bf16_mixed_training(make_cfg, strategy, logged):
    _, trainer = fit(make_cfg(f"strategy={strategy}", *FAST_DA, "trainer.precision=bf16-mixed",
                              "trainer.limit_train_batches=2"))
    assert torch.isfinite(trainer.callback_metrics[logged]) and torch.isfinite(trainer.callback_metrics["train/loss"])


def test_weight_zero_is_source_only(make_cfg):
    """With its weight at 0 a method is the source-only baseline: the target never reaches the network."""
    _, datamodule, module, trainer = build(make_cfg("strategy=mcc", "strategy.mcc_weight=0", *FAST_DA,
                                                    "trainer.limit_train_batches=2"))
    sizes = []
    module.backbone.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])) if m.training else None)
    trainer.fit(module, datamodule=datamodule)
    assert sizes == [8, 8] and "mcc/loss" not in trainer.callback_metrics


@pytest.mark.parametrize("strategy", ["cdan", "mcc"])
def test_sigkill_mid_epoch_then_resume_auto_equals_an_uninterrupted_run(make_cfg, tmp_path, strategy):
    """Source 2 batches, target 6 a epoch (1:3); killed at step 5 after a checkpoint at step 3."""
    folders = {}
    for name, per_class, seed in (("source", 4, 1), ("target", 12, 2)):
        for split, count in (("train", per_class), ("val", 3), ("test", 3)):
            make_image_tree(tmp_path / name / split, classes=("a", "b"), per_class=count, size=16, modes=("RGB",),
                            seed=seed)
        folders[name] = tmp_path / name
    args = [f"strategy={strategy}", "data=domain_pair", "model=timm", "model.name=mobilenetv3_small_050",
            "model.weights=none", "data.image_size=16", "data.batch_size=4", "data.num_workers=0",
            "data.persistent_workers=false", "data.pin_memory=false", f"data.source={folders['source']}",
            f"data.target={folders['target']}", "logger=none", "callbacks.evaluation_figures=null",
            "callbacks.domain_report=null", "callbacks.lr_monitor=null", "++callbacks.rich_progress_bar=null",
            "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "trainer.max_epochs=2",
            "test=false", "callbacks.last_checkpoint.every_n_train_steps=3",
            "+callbacks.chaos._target_=chaos.SignalAtStep", "+callbacks.chaos.step=5"]
    train(make_cfg(*args[:-2], fast=False, run="straight"))
    work = tmp_path / "work"
    work.mkdir()
    killed = run_cli(*args, cwd=work, env=ENV)
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = run_cli(*args, "resume=auto", cwd=work, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted((work / "outputs" / "runs").iterdir())
    expected = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(runs[-1] / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == 12
    differ = [k for k, v in expected["state_dict"].items()
              if not torch.allclose(got["state_dict"][k].float(), v.float(), rtol=0, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
