"""Strategies on real data: what trains, what stays frozen (bit for bit), lrs per group, resume of unfreezing."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from transferlab.experiment import build, train
from transferlab.strategies.base import TransferModule


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit(cfg):
    _, datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def test_linear_probe_keeps_backbone_and_bn_statistics_byte_identical(make_cfg):
    cfg = make_cfg("strategy=linear_probe", "strategy.head_hidden=[64]", "strategy.head_dropout=0.5",
                   "trainer.limit_train_batches=4")
    _, datamodule, module, trainer = build(cfg)
    backbone_before, head_before = snapshot(module.backbone), snapshot(module.head)
    assert any("running_mean" in k for k in backbone_before)
    trainer.fit(module, datamodule=datamodule)
    after = module.backbone.state_dict()
    assert all(torch.equal(backbone_before[k], after[k]) for k in backbone_before)  # incl. running stats
    assert any(not torch.equal(head_before[k], v) for k, v in module.head.state_dict().items())
    assert [type(m).__name__ for m in module.head] == ["Linear", "ReLU", "Dropout", "Linear"]
    groups = trainer.optimizers[0].param_groups
    assert {g["name"] for g in groups} == {"head", "head_no_decay"}


def test_finetune_trains_only_stages_above_freeze_depth(make_cfg):
    cfg = make_cfg("strategy.freeze_depth=5", "trainer.limit_train_batches=3")
    _, datamodule, module, trainer = build(cfg)
    before = snapshot(module.backbone.model)
    trainer.fit(module, datamodule=datamodule)
    after = module.backbone.model.state_dict()
    stages = module.backbone.stages
    for i, stage in enumerate(stages):
        buffers = [k for k in before if any(k.startswith(n.rsplit(".", 1)[0] + ".") for n in stage)]
        changed = any(not torch.equal(before[k], after[k]) for k in set(stage) | set(buffers))
        assert changed == (i >= 5), f"stage {i}"


def test_parameter_groups_lrs_and_no_weight_decay_on_norms(make_cfg):
    cfg = make_cfg("strategy.backbone_lr_mult=0.1", "strategy.layer_decay=0.5", "optimizer.lr=0.01",
                   "optimizer.weight_decay=0.05", "scheduler=none")
    _, _, module, _ = build(cfg)
    groups = {g["name"]: g for g in module.parameter_groups(0.01, 0.05)}
    n = module.backbone.num_stages
    for i in range(n):
        assert groups[f"stage{i}"]["lr"] == pytest.approx(0.01 * 0.1 * 0.5 ** (n - 1 - i))
        assert all(p.ndim > 1 for p in groups[f"stage{i}"]["params"]) and groups[f"stage{i}"]["weight_decay"] == 0.05
        assert all(p.ndim <= 1 for p in groups[f"stage{i}_no_decay"]["params"])
        assert groups[f"stage{i}_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["lr"] == 0.01
    counted = sum(p.numel() for g in groups.values() for p in g["params"])
    assert counted == sum(p.numel() for p in module.parameters())  # every parameter exactly once


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("scheduler", ["cosine", "step", "none"])
def test_optimizers_and_schedulers_train(make_cfg, optimizer, scheduler):
    cfg = make_cfg(f"optimizer={optimizer}", f"scheduler={scheduler}", "trainer.limit_train_batches=2",
                   "logger=none", "test=false")
    module, trainer = fit(cfg)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_cosine_warmup_schedule_shape(make_cfg):
    cfg = make_cfg("scheduler.warmup_fraction=0.25", "trainer.limit_train_batches=8", "trainer.max_epochs=1")
    _, datamodule, module, trainer = build(cfg)
    seen = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append(trainer.optimizers[0].param_groups[-1]["lr"])

    trainer.callbacks.append(Record())
    trainer.fit(module, datamodule=datamodule)
    peak = cfg.optimizer.lr
    assert seen[0] < seen[1] == pytest.approx(peak)  # 2 warm-up steps, then the peak
    assert all(a >= b for a, b in zip(seen[1:], seen[2:])) and seen[-1] < 0.2 * peak


class CrashAtEpoch(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_gradual_unfreezing_follows_epochs_and_survives_resume(make_cfg, tmp_path):
    common = ("strategy.freeze_depth=8", "strategy.head_hidden=[32]", "strategy.head_dropout=0.3",
              "strategy.unfreeze_epochs=[1,2]", "strategy.unfreeze_step=2",
              "trainer.max_epochs=3", "trainer.limit_train_batches=3", "test=false")
    straight, trainer = fit(make_cfg(*common, run="straight"))
    assert trainer.callback_metrics["finetune/frozen_depth"] == 4  # 8, then 6 at epoch 1, 4 at epoch 2

    cfg = make_cfg(*common, run="crashed")
    _, datamodule, module, trainer = build(cfg)
    trainer.callbacks.append(CrashAtEpoch(2))
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.fit(module, datamodule=datamodule)
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert last.is_file()

    resumed_cfg = make_cfg(*common, f"resume={last}", run="resumed")
    train(resumed_cfg)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    differ = [k for k, v in straight.state_dict().items() if not torch.allclose(resumed[k], v, rtol=0, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, first {differ[:3]} last {differ[-3:]}"


def test_bad_strategy_values_are_clear(make_cfg):
    from transferlab.contracts.errors import TransferlabError

    with pytest.raises(TransferlabError, match=r"strategy.freeze_depth=99 is out of range: efficientnet_lite0 has 8"):
        build(make_cfg("strategy.freeze_depth=99"))
    with pytest.raises(TransferlabError, match="optimizer.lr='abc' is not a number"):
        fit(make_cfg("optimizer.lr=abc"))
    with pytest.raises(TransferlabError, match=r"optimizer.lr=-1 must be > 0"):
        fit(make_cfg("optimizer.lr=-1"))
    with pytest.raises(TransferlabError, match="data.batch_size=0 must be >= 1"):
        build(make_cfg("data.batch_size=0"))


def test_module_checkpoint_carries_class_names_and_plain_hparams(make_cfg, tmp_path):
    cfg = make_cfg("strategy.head_hidden=[16]")
    train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["transferlab"]["class_names"] == [str(d) for d in range(10)]
    assert ckpt["hyper_parameters"]["head_hidden"] == [16] and type(ckpt["hyper_parameters"]["head_hidden"]) is list
    assert issubclass(type(build(cfg)[2]), TransferModule)
