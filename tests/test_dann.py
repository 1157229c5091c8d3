"""DANN: the gradient reversal layer, the lambda schedule (also after resume), BN modes, autocast, selection report."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fakes import make_image_tree
from lightning.pytorch.callbacks import Callback

from transferlab.callbacks.domain import harm_warnings
from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import build, train
from transferlab.heads import GradientReversal, build_discriminator, dann_lambda, grad_reverse

DANN = ["strategy=dann", "data=digits_blend", "callbacks.domain_report=null", "callbacks.validator_selection=null",
        "callbacks.evaluation_figures=null", "logger=none"]


def fit(cfg, *callbacks):
    _, datamodule, module, trainer = build(cfg)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0])
def test_grl_is_identity_forward_and_minus_lambda_times_the_gradient_backward(coeff):
    x = torch.randn(5, 7, requires_grad=True)
    upstream = torch.randn(5, 7)
    y = GradientReversal()(x, coeff)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -coeff * upstream)
    assert torch.equal(grad_reverse(x, coeff), x)


def test_lambda_follows_the_formula():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(1.0, gamma=1.0, max_value=0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-1)) - 1))


class RecordLambda(Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((trainer.global_step - 1, float(trainer.callback_metrics["dann/lambda"])))


class CrashAtEpoch(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


def test_lambda_is_derived_from_the_trainer_and_right_after_resume(make_cfg, tmp_path):
    common = (*DANN, "trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
              "test=false")
    straight = RecordLambda()
    fit(make_cfg(*common, run="straight"), straight)
    assert [s for s, _ in straight.steps] == list(range(6))
    assert [v for _, v in straight.steps] == pytest.approx([dann_lambda(s / 6) for s in range(6)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(make_cfg(*common, run="crashed"), CrashAtEpoch())
    resumed = RecordLambda()
    cfg = make_cfg(*common, f"resume={tmp_path / 'crashed' / 'checkpoints' / 'last.ckpt'}", run="resumed")
    _, datamodule, module, trainer = build(cfg)
    trainer.callbacks.append(resumed)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume)
    assert resumed.steps == straight.steps[3:]


def test_discriminator_and_domain_loss_under_bf16_autocast(make_cfg):
    _, _, module, _ = build(make_cfg(*DANN))
    source, target = torch.randn(6, 256, requires_grad=True), torch.randn(5, 256, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = build_discriminator(256, 64, dropout=0.5)(source)
        loss = module.domain_loss(source, target, coeff=0.5)
    assert logits.shape == (6, 1) and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(source.grad).all() and module.discriminator[0].weight.grad is not None


def test_bf16_mixed_training_step(make_cfg):
    module, trainer = fit(make_cfg(*DANN, "trainer.precision=bf16-mixed", "trainer.limit_train_batches=1",
                                   "trainer.limit_val_batches=1"))
    assert torch.isfinite(trainer.callback_metrics["domain/loss"])


def count_backbone_batches(module) -> list[int]:
    sizes = []
    module.backbone.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])) if m.training else None)
    return sizes


@pytest.mark.parametrize("joint_bn,expected", [(True, [16]), (False, [8, 8])])
def test_joint_bn_passes_one_concatenated_batch_else_two(make_cfg, joint_bn, expected):
    _, datamodule, module, trainer = build(make_cfg(*DANN, f"strategy.joint_bn={joint_bn}",
                                                    "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"))
    sizes = count_backbone_batches(module)
    trainer.fit(module, datamodule=datamodule)
    assert sizes == expected


def test_source_only_never_feeds_target_images_and_leaves_the_discriminator(make_cfg):
    _, datamodule, module, trainer = build(make_cfg(*DANN, "strategy=source_only", "trainer.limit_train_batches=2",
                                                    "trainer.limit_val_batches=1"))
    sizes = count_backbone_batches(module)
    before = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    assert sizes == [8, 8] and module.domain_weight == 0
    assert all(torch.equal(before[k], v) for k, v in module.discriminator.state_dict().items())


def test_parameter_groups_backbone_lr_multiplier_and_discriminator_in_head(make_cfg):
    _, _, module, _ = build(make_cfg(*DANN, "scheduler=none"))
    groups = {g["name"]: g for g in module.parameter_groups(0.01, 0.0)}
    assert groups["stage0"]["lr"] == pytest.approx(0.001) and groups["head"]["lr"] == 0.01
    head = {id(p) for p in groups["head"]["params"] + groups["head_no_decay"]["params"]}
    assert all(id(p) in head for p in module.discriminator.parameters())
    assert [type(m).__name__ for m in module.head.bottleneck] == ["Linear", "BatchNorm1d", "ReLU"]


def test_final_batch_of_one_sample_never_reaches_batchnorm(make_cfg, tmp_path):
    source = make_image_tree(tmp_path / "src", classes=("a", "b"), per_class=14, size=16, modes=("RGB",))
    target = make_image_tree(tmp_path / "tgt", classes=("a", "b"), per_class=14, size=16, modes=("L",), seed=1)
    overrides = [*DANN, "data=domain_pair", f"data.source={source}", f"data.target={target}", "data.num_workers=0",
                 "data.persistent_workers=false", "data.val_fraction=0.2", "data.test_fraction=0.2",
                 "strategy.joint_bn=false", "trainer.limit_train_batches=null", "test=false"]
    _, datamodule, _, _ = build(make_cfg(*overrides))
    datamodule.setup("fit")
    size = len(datamodule.train_set) - 1  # the final batch of each domain would hold one sample
    assert len(datamodule.target_train) % size == 1
    module, trainer = fit(make_cfg(*overrides, f"data.batch_size={size}"))
    assert trainer.global_step == 1 and torch.isfinite(trainer.callback_metrics["train/loss"])


def test_dann_without_a_target_domain_is_a_clear_error(make_cfg):
    with pytest.raises(TransferlabError, match="needs data with a target domain"):
        fit(make_cfg("strategy=dann", "data=digits"))


def test_selection_report_figures_and_pad(make_cfg, tmp_path):
    cfg = make_cfg("strategy=dann", "data=digits_blend", "callbacks.domain_report.method=pca",
                   "callbacks.domain_report.max_samples=64", "trainer.max_epochs=2", "trainer.limit_test_batches=null")
    train(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    report = metrics["domain_adaptation"]
    assert metrics["monitor"] == "val/acc" and [r["epoch"] for r in report["history"]] == [0, 1]
    assert set(report["selection"]) == {"val/acc", "val/im", "val/snd", "val/neg_dev_risk", "val/target_acc_oracle"}
    chosen = report["selection"]["val/acc"]
    assert chosen["value"] == max(r["val/acc"] for r in report["history"])
    assert metrics["metrics"]["test/target_acc"] == pytest.approx(chosen["target_test_acc"], abs=1e-6)  # same weights
    assert 0 <= metrics["metrics"]["test/source_acc"] <= 1 and "test/acc" not in metrics["metrics"]
    assert isinstance(report["warnings"], list) and all("domain/acc" in r for r in report["history"])
    assert report["target_test_acc_best_epoch_cheating"] == max(r["target_test_acc"] for r in report["history"])
    assert -2 <= metrics["domain/pad_start"] <= 2 and -2 <= metrics["domain/pad_end"] <= 2
    assert (run / "figures" / "embedding.png").stat().st_size > 0
    assert 0 < metrics["metrics"]["dann/lambda"] < 1 and 0 <= metrics["metrics"]["domain/acc"] <= 1


def test_harm_warnings_name_a_winning_discriminator_and_an_im_collapse():
    healthy = [{"epoch": e, "domain/acc": 0.6, "val/im": 0.5 + 0.05 * e} for e in range(4)]
    assert harm_warnings(healthy) == []
    won = [*healthy[:-1], {"epoch": 3, "domain/acc": 0.96, "val/im": 0.6}]
    assert len(harm_warnings(won)) == 1 and "discriminator won: domain/acc 0.96" in harm_warnings(won)[0]
    collapsed = [{"epoch": 0, "domain/acc": 0.7, "val/im": 0.61}, {"epoch": 1, "domain/acc": 0.7, "val/im": 0.12}]
    assert len(harm_warnings(collapsed)) == 1 and "IM fell from 0.61 (epoch 0) to 0.12" in harm_warnings(collapsed)[0]
    assert len(harm_warnings([{**r, "domain/acc": 0.95} for r in collapsed])) == 2
    assert harm_warnings([{"epoch": 0, "val/im": 0.5}]) == []  # source only: no discriminator, one epoch
