"""Linear probes on cached features: the cache holds exactly the backbone's features, is keyed by content, and a
grid of heads trains in one pass with each head's own optimizer settings."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from transferlab.data.feature_cache import cache_key, cached_features, extract_features, unaugmented
from transferlab.experiment import build, train

PROBE = ["strategy=linear_probe", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null",
         "data.samples_per_class=20", "data.image_size=64", "data.batch_size=20", "optimizer.lr=1e-2", "scheduler=none"]
CACHED = [*PROBE, "data.cache_features=true"]


def test_cache_holds_the_backbones_features_of_unaugmented_images(make_cfg, tmp_path):
    _, datamodule, module, _ = build(make_cfg(*PROBE))
    datamodule.setup("fit")
    plain = unaugmented(datamodule.train_set, datamodule.val_set)
    assert plain.transform is datamodule.val_set.transform and datamodule.train_set.transform is not plain.transform
    first = cached_features(module.backbone, {"train": plain}, 64, tmp_path)["train"]
    images = torch.stack([plain[i][0] for i in range(5)])
    module.backbone.eval()
    with torch.no_grad():
        assert torch.allclose(first.tensors[0][:5], module.backbone(images), atol=1e-5)
    assert torch.equal(first.tensors[1], plain.labels)
    files = list(tmp_path.glob("features-*.pt"))
    assert len(files) == 1
    again = cached_features(module.backbone, {"train": plain}, 64, tmp_path)["train"]  # read back, not recomputed
    assert torch.equal(again.tensors[0], first.tensors[0]) and list(tmp_path.glob("features-*.pt")) == files


def test_cache_key_changes_with_weights_images_and_transform(make_cfg):
    _, datamodule, module, _ = build(make_cfg(*PROBE))
    datamodule.setup("fit")
    val = datamodule.val_set
    key = cache_key(module.backbone, {"val": val}, 32)
    assert key == cache_key(module.backbone, {"val": val}, 32)
    assert key != cache_key(module.backbone, {"val": val}, 48)
    assert key != cache_key(module.backbone, {"train": unaugmented(datamodule.train_set, val)}, 32)
    val.images[0, 0, 0, 0] ^= 1  # one pixel of one image
    assert key != cache_key(module.backbone, {"val": val}, 32)
    val.images[0, 0, 0, 0] ^= 1
    with torch.no_grad():
        next(module.backbone.parameters()).add_(1e-3)
    assert key != cache_key(module.backbone, {"val": val}, 32)


def test_cached_probe_trains_the_head_on_features_and_tests_on_images(make_cfg):
    cfg = make_cfg(*CACHED, "trainer.max_epochs=3")
    _, datamodule, module, trainer = build(cfg)
    before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    assert isinstance(datamodule.train_set, torch.utils.data.TensorDataset)
    assert datamodule.train_set.tensors[0].shape == (200, module.backbone.num_features)
    assert all(torch.equal(before[k], v) for k, v in module.backbone.state_dict().items())
    trainer.test(module, datamodule=datamodule, verbose=False)  # images through the whole network
    assert float(trainer.callback_metrics["test/acc"]) > 0.3


def test_head_grid_trains_every_head_with_its_own_settings_and_tests_the_best(make_cfg):
    cfg = make_cfg(*CACHED, "strategy.head_grid={lr:[1e-5,1e-2],weight_decay:[0,1e-2]}", "trainer.max_epochs=3")
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["metrics"]
    heads = [metrics[f"probe/head{k}/val_acc"] for k in range(4)]
    assert metrics["val/acc"] == max(heads) and heads.index(max(heads)) in (2, 3)  # lr 1e-2 beats lr 1e-5
    best = torch.load(metrics_path := Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert "head.selected" in best["state_dict"] and metrics_path.is_file()
    _, datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    groups = {g["name"]: (g["lr"], g["weight_decay"]) for g in trainer.optimizers[0].param_groups}
    assert groups["head0"] == (1e-5, 0.0) and groups["head3"] == (1e-2, 1e-2) and groups["head3_no_decay"][1] == 0.0


def test_extract_features_keeps_order_and_mode(make_cfg):
    _, datamodule, module, _ = build(make_cfg())
    datamodule.setup("fit")
    module.backbone.train()
    features = extract_features(module.backbone, datamodule.val_set, batch_size=7)
    assert module.backbone.training and len(features) == len(datamodule.val_set)
    assert torch.equal(features.tensors[1], datamodule.val_set.labels)
