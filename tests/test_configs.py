"""Every file of every config group composes and instantiates (the template composes only the default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision
from fakes import make_fake_cifar10, make_image_tree, patched_cifar10_md5
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf

from transferlab.backbones import Backbone
from transferlab.backbones.torchvision_zoo import cached_weights_path
from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import build
from transferlab.strategies import TransferModule

CONF = Path(__file__).resolve().parents[1] / "transferlab" / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def datasets(tmp_path, monkeypatch):
    """A fake CIFAR-10 (real pickle format, real MD5 check) and a two-class image tree, as data roots."""
    cifar = tmp_path / "cifar"
    make_fake_cifar10(cifar)
    tree = tmp_path / "images"
    make_image_tree(tree, classes=("normal", "tumour"), per_class=12, size=40)
    other = make_image_tree(tmp_path / "other", classes=("normal", "tumour"), per_class=12, size=40, seed=1)
    with patched_cifar10_md5(cifar):
        yield {"cifar": cifar, "tree": tree, "other": other}


@pytest.fixture
def cached_weights(tmp_path, monkeypatch):
    """Files under the names torchvision looks for in the hub cache (random values: the code path is the real one)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("resnet18", "resnet50"):
        path = cached_weights_path(torchvision.models.get_model_weights(name).DEFAULT)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.get_model(name).state_dict(), path)


def test_every_group_has_its_options():
    assert set(options("model")) >= {"resnet18", "resnet34", "resnet50", "resnet101", "efficientnet_b0",
                                     "mobilenet_v3_large", "convnext_tiny", "vit_b_16", "timm", "efficientnet_lite0"}
    assert set(options("strategy")) >= {"finetune", "linear_probe", "scratch", "multitask", "dann", "source_only"}
    assert set(options("data")) >= {"cifar10", "imagefolder", "digits", "domain_pair", "digits_blend"}
    assert set(options("optimizer")) == {"sgd", "adam", "adamw"}
    assert set(options("scheduler")) == {"cosine", "step", "none", "dann"}
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("debug")) >= {"default", "fdr", "limit", "overfit", "profiler"}
    assert set(options("experiment")) >= {"cifar10_resnet18_sgd", "ct_feature_extractor", "digits_fewshot",
                                          "digits_multitask", "cifar10_multitask"}


@pytest.mark.parametrize("name", options("model"))
def test_model_configs(make_cfg, name):
    cfg = make_cfg(f"model={name}", *(["model.weights=none"] if name != "efficientnet_lite0" else []))
    backbone = instantiate(cfg.model)
    assert isinstance(backbone, Backbone) and backbone.num_features > 0


@pytest.mark.parametrize("group", ["strategy", "optimizer", "scheduler", "logger", "callbacks"])
def test_training_group_configs_build(make_cfg, group):
    for name in options(group):
        if group == "logger" and name in ("wandb", "mlflow") and importlib.util.find_spec(name) is None:
            with pytest.raises(TransferlabError, match=f"pip install {name}"):  # an optional package, not installed
                build(make_cfg(f"{group}={name}"))
            continue
        _, datamodule, module, trainer = build(make_cfg(f"{group}={name}"))
        assert isinstance(module, TransferModule) and module.num_classes == datamodule.num_classes == 10
        if group == "strategy" and name == "scratch":
            stem = module.backbone.model.conv_stem.weight
            assert not torch.equal(stem, build(make_cfg())[2].backbone.model.conv_stem.weight)
        if group == "logger":
            assert all(isinstance(logger, Logger) for logger in trainer.loggers)


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs(make_cfg, name):
    # GPU configs on this CPU machine: everything but the accelerator is as written.
    cfg = make_cfg(f"trainer={name}", "trainer.accelerator=cpu", "trainer.devices=1")
    _, _, _, trainer = build(cfg)
    assert trainer.max_epochs == 1
    if name != "cpu":
        assert cfg.trainer.precision == "bf16-mixed" and cfg.channels_last


def test_data_configs(make_cfg, datasets):
    for name, extra in {"digits": [], "cifar10": [f"data.root={datasets['cifar']}", "data.download=false",
                                                  "data.num_workers=0", "data.persistent_workers=false"],
                        "imagefolder": [f"data.root={datasets['tree']}", "data.num_workers=0",
                                        "data.persistent_workers=false"]}.items():
        _, datamodule, module, trainer = build(make_cfg(f"data={name}", *extra))
        datamodule.setup("fit")
        images, labels = next(iter(datamodule.train_dataloader()))
        assert images.shape[1:] == (3, 32, 32) and labels.max() < datamodule.num_classes
    domain = {"digits_blend": [], "fonts_to_digits": [],
              "domain_pair": [f"data.source={datasets['tree']}", f"data.target={datasets['other']}",
                              "data.num_workers=0", "data.persistent_workers=false"]}
    assert set(domain) | {"digits", "cifar10", "imagefolder"} == set(options("data"))
    for name, extra in domain.items():  # two-domain data: batches of {"source": ..., "target": ...}
        _, datamodule, module, trainer = build(make_cfg(f"data={name}", "strategy=dann", *extra))
        datamodule.setup("fit")
        batch, _, _ = next(iter(datamodule.train_dataloader()))
        assert {k: v[0].shape[1:] for k, v in batch.items()} == {"source": (3, 32, 32), "target": (3, 32, 32)}


def test_paths_and_hydra_configs(make_cfg, tmp_path):
    cfg = make_cfg()
    assert cfg.paths.output_dir == str(tmp_path / "run")
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"
    assert cfg.hydra.callbacks.sweep_summary._target_.endswith("SweepSummary")


@pytest.mark.parametrize("name", options("debug"))
def test_debug_configs_run(make_cfg, name):
    _, datamodule, module, trainer = build(make_cfg(f"debug={name}", "trainer.limit_train_batches=2",
                                                    "trainer.limit_val_batches=1"))
    trainer.fit(module, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_configs(make_cfg, name, datasets, cached_weights):
    cifar = [f"data.root={datasets['cifar']}", "data.download=false"]
    extra = {"cifar10_resnet18_sgd": cifar, "cifar10_multitask": cifar,
             "ct_feature_extractor": [f"data.root={datasets['tree']}"]}.get(name, [])
    cfg = make_cfg(f"experiment={name}", *extra, "data.num_workers=0", "data.persistent_workers=false",
                   "data.image_size=32")
    as_written = make_cfg(f"experiment={name}", fast=False, run="as_written")
    _, datamodule, module, trainer = build(cfg)
    if name == "cifar10_resnet18_sgd":
        assert as_written.data.batch_size == 100 and as_written.data.image_size == 224
        assert as_written.optimizer.lr == 0.001 and as_written.optimizer.momentum == 0.9
        assert as_written.trainer.max_epochs == 10 and as_written.model.weights == "imagenet"
        assert module.head[-1].out_features == 10 and module.backbone.name == "resnet18"
    if name == "ct_feature_extractor":
        assert [type(m).__name__ for m in module.head] == ["Linear", "ReLU", "Dropout", "Linear"]
        assert module.head[0].in_features == 2048 and module.head[-1].out_features == 2
        assert module.head[2].p == 0.5 and datamodule.class_names == ["normal", "tumour"]
    if name.endswith("_multitask"):
        assert list(module.head) == list(datamodule.tasks) == [t.name for t in as_written.strategy.tasks]
    datamodule.setup("fit")
    if name == "digits_fewshot":
        assert cfg.data.samples_per_class == 10 and len(datamodule.train_set) == 100
    trainer.fit(module, datamodule=datamodule)


@pytest.mark.parametrize("strategy", ["finetune", "linear_probe", "scratch"])
@pytest.mark.parametrize("data", ["digits", "cifar10", "imagefolder"])
def test_every_strategy_trains_and_tests_on_every_dataset(make_cfg, datasets, strategy, data):
    extra = {"cifar10": [f"data.root={datasets['cifar']}", "data.download=false"],
             "imagefolder": [f"data.root={datasets['tree']}"]}.get(data, [])
    cfg = make_cfg(f"strategy={strategy}", f"data={data}", *extra, "data.num_workers=0",
                   "data.persistent_workers=false", "callbacks.evaluation_figures=null")
    _, datamodule, module, trainer = build(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    changed = {k.split(".")[0] for k, v in module.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == ({"head"} if strategy == "linear_probe" else {"backbone", "head"})
    assert 0.0 <= float(trainer.callback_metrics["test/acc"]) <= 1.0
    assert module.hparams.num_classes == datamodule.num_classes == {"digits": 10, "cifar10": 10}.get(data, 2)
