"""Domain pairs of unequal sizes, both ways and in both folder layouts: every epoch runs max(source, target) steps,
the shorter domain is cycled, validation runs every epoch, and a mid-epoch kill resumes bit-exactly."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, run_cli
from fakes import make_image_tree

from transferlab.data.base import EpochSeededSampler
from transferlab.experiment import build, train

BATCH = 4
# Tiny, fast and offline: a MobileNetV3-Small-0.5 from scratch at 16 px, no figures, no logger.
PAIR = ["strategy=dann", "data=domain_pair", "model=timm", "model.name=mobilenetv3_small_050", "model.weights=none",
        "data.image_size=16",
        f"data.batch_size={BATCH}", "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false",
        "data.val_fraction=0.2", "data.test_fraction=0.2", "logger=none", "callbacks.evaluation_figures=null",
        "callbacks.domain_report=null", "callbacks.lr_monitor=null", "++callbacks.rich_progress_bar=null",
        "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "trainer.max_epochs=2"]


def make_domain(root, per_class: int, layout: str, seed: int):
    """``per_class`` training images per class (2 classes), as ``flat`` class folders (val/test held out of
    them: the folder holds 5/3 as many) or as ``split`` train/ val/ test/ folders."""
    if layout == "split":
        for split, count in (("train", per_class), ("val", 3), ("test", 3)):
            make_image_tree(root / split, classes=("a", "b"), per_class=count, size=16, modes=("RGB",), seed=seed)
    else:
        make_image_tree(root, classes=("a", "b"), per_class=per_class * 5 // 3, size=16, modes=("RGB",), seed=seed)
    return root


def batches(n: int) -> int:
    return n // BATCH if n % BATCH == 1 else -(-n // BATCH)


@pytest.mark.parametrize("layout", ["flat", "split"])
@pytest.mark.parametrize("source_per_class,target_per_class", [(6, 18), (12, 12), (18, 6)],
                         ids=["1:3", "1:1", "3:1"])
def test_each_ratio_and_layout_runs_full_epochs_and_validates_every_epoch(make_cfg, tmp_path, layout,
                                                                          source_per_class, target_per_class):
    source = make_domain(tmp_path / "source", source_per_class, layout, seed=1)
    target = make_domain(tmp_path / "target", target_per_class, layout, seed=2)
    cfg = make_cfg(*PAIR, f"data.source={source}", f"data.target={target}", fast=False)
    _, datamodule, _, _ = build(cfg)
    datamodule.setup("fit")
    steps = max(batches(len(datamodule.train_set)), batches(len(datamodule.target_train)))
    ratio = batches(len(datamodule.train_set)) / batches(len(datamodule.target_train))
    assert ratio == pytest.approx(source_per_class / target_per_class, rel=0.25)
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed", metrics.get("error")
    history = metrics["domain_adaptation"]["history"]
    assert [row["epoch"] for row in history] == [0, 1]
    assert [row["step"] for row in history] == [steps, 2 * steps]  # every epoch ran max(source, target) steps
    assert all(0.0 <= row["val/acc"] <= 1.0 for row in history)
    assert {"test/source_acc", "test/target_acc"} <= set(metrics["metrics"]) and "test/acc" not in metrics["metrics"]


def drawn(sampler: EpochSeededSampler, epoch: int, passes: int) -> list[list[int]]:
    """The index orders of ``passes`` iterations within ``epoch``, as CombinedLoader's cycling draws them."""
    sampler.set_epoch(epoch)
    return [[index for index, _ in sampler] for _ in range(passes)]


def test_cycled_passes_are_full_new_orders_and_domains_draw_independent_orders():
    source = EpochSeededSampler(20, seed=0, stream=0, batch_size=4)
    target = EpochSeededSampler(20, seed=0, stream=1, batch_size=4)
    passes = drawn(source, 0, 3)
    assert all(sorted(p) == list(range(20)) for p in passes)  # a cycled pass is a whole pass, not an empty one
    assert passes[0] != passes[1] != passes[2]
    assert drawn(target, 0, 1)[0] != passes[0]  # target order is not the source's
    assert drawn(EpochSeededSampler(20, seed=0, stream=0, batch_size=4), 0, 1)[0] == passes[0]  # reproducible
    assert drawn(source, 1, 1)[0] != passes[0]  # a new epoch starts a new order


@pytest.mark.parametrize("done", [0, 3, 5, 11])
def test_after_a_resume_each_loader_continues_at_its_own_position(done):
    """A sampler restored ``done`` batches into the epoch continues exactly where an uninterrupted one is."""
    straight = EpochSeededSampler(10, seed=3, stream=1, batch_size=4)  # 3 batches per pass (4, 4, 2)
    flat = [i for p in drawn(straight, 2, 5) for i in p]
    resumed = EpochSeededSampler(10, seed=3, stream=1, batch_size=4, done=lambda: done)
    continued = [i for p in drawn(resumed, 2, 5) for i in p]
    consumed = sum(len(p) for p in [flat[:10]] * (done // 3)) + (done % 3) * 4
    assert continued[: len(flat) - consumed - 10] == flat[consumed: len(flat) - 10]


ENV = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}


def test_sigkill_mid_epoch_at_1_to_3_then_resume_auto_equals_an_uninterrupted_run(make_cfg, tmp_path):
    """Source 2 batches, target 6 (6 steps an epoch): last.ckpt at step 3 holds the cycled source in its second
    pass (pass 1, batch 1) and the target at batch 3; the run is killed at step 5."""
    source = make_domain(tmp_path / "source", 4, "split", seed=1)
    target = make_domain(tmp_path / "target", 12, "split", seed=2)
    args = [*PAIR, f"data.source={source}", f"data.target={target}", "test=false",
            "callbacks.last_checkpoint.every_n_train_steps=3", "+callbacks.chaos._target_=chaos.SignalAtStep",
            "+callbacks.chaos.step=5"]
    train(make_cfg(*args[:-2], fast=False, run="straight"))
    work = tmp_path / "work"
    work.mkdir()
    killed = run_cli(*args, cwd=work, env=ENV)
    assert killed.returncode == -9, killed.stderr[-3000:]
    (crashed,) = sorted((work / "outputs" / "runs").iterdir())
    assert torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    resumed = run_cli(*args, "resume=auto", cwd=work, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted((work / "outputs" / "runs").iterdir())
    expected = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(runs[-1] / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == 12
    differ = [k for k, v in expected["state_dict"].items()
              if not torch.allclose(got["state_dict"][k].float(), v.float(), rtol=0, atol=1e-6)]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
