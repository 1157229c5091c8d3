"""torchvision backbones: classifier removed, stages declared per family."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn

from transferlab.backbones.backbone import Backbone
from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError


def _resnet(m):
    m.fc, width = nn.Identity(), m.fc.in_features
    return width, [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]


def _efficientnet(m):
    width = m.classifier[-1].in_features
    m.classifier = nn.Identity()
    return width, [[f"features.{i}"] for i in range(len(m.features))]


def _mobilenet_v3(m):
    width = m.classifier[-1].in_features
    m.classifier = m.classifier[:-1]  # keep the pretrained 960->1280 projection
    groups = [[0], [1], [2, 3], [4, 5, 6], list(range(7, 13)), [13, 14, 15]]
    return width, [[f"features.{i}" for i in g] for g in groups] + [["features.16", "classifier"]]


def _convnext(m):
    width = m.classifier[-1].in_features
    m.classifier = m.classifier[:-1]  # keep LayerNorm + Flatten
    return width, [["features.0"], ["features.1"], ["features.2", "features.3"], ["features.4", "features.5"],
                   ["features.6", "features.7", "classifier"]]


def _vit(m):
    width = m.heads.head.in_features
    m.heads = nn.Identity()
    n = len(m.encoder.layers)
    layers = [[f"encoder.layers.encoder_layer_{i}"] for i in range(n)]
    layers[-1].append("encoder.ln")
    return width, [["conv_proj", "class_token", "encoder.pos_embedding"]] + layers


FAMILIES = {
    "resnet18": _resnet, "resnet34": _resnet, "resnet50": _resnet, "resnet101": _resnet,
    "efficientnet_b0": _efficientnet, "mobilenet_v3_large": _mobilenet_v3,
    "convnext_tiny": _convnext, "vit_b_16": _vit,
}


def _expand(model: nn.Module, prefixes: list[list[str]]) -> list[list[str]]:
    names = [n for n, _ in model.named_parameters()]
    return [[n for n in names if any(n == p or n.startswith(p + ".") for p in stage)] for stage in prefixes]


def cached_weights_path(weights) -> Path:
    """Where torch hub keeps (or would keep) the file for a torchvision weights enum."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def build_torchvision(name: str, pretrained: bool) -> Backbone:
    """Build torchvision model ``name``, ImageNet weights downloaded or read from the torch hub cache."""
    if name not in FAMILIES:
        raise TransferlabError(f"unknown torchvision backbone '{name}' (choose from {', '.join(FAMILIES)}, "
                               "or use model=timm model.name=...)")
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = cached_weights_path(weights)
    fetching = pretrained and not cached.is_file()
    try:  # torch hub's own download, its "Downloading: ..." line held back: offline, only the error line shows
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = torchvision.models.get_model(name, weights=weights if pretrained else None)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a broken cache file raises RuntimeError
        raise TransferlabError(
            f"ImageNet weights for {name} are not in {cached} and could not be {'downloaded' if fetching else 'read'} "
            f"({type(err).__name__}); put the file from {weights.url} there, or use model.weights=/path/to/file, "
            "or model=efficientnet_lite0 (its ImageNet weights ship in a package: no download), or model.weights=none "
            "to start from random weights") from None
    if fetching:
        print(f"transferlab: downloaded ImageNet weights for {name} to {cached}", file=sys.stderr)
    preset = weights.transforms()
    data_config = DataConfig(mean=tuple(preset.mean), std=tuple(preset.std), input_size=preset.crop_size[0],
                             interpolation=preset.interpolation.value,
                             crop_pct=preset.crop_size[0] / preset.resize_size[0])
    width, prefixes = FAMILIES[name](model)
    return Backbone(model, width, _expand(model, prefixes), data_config, name=name)
