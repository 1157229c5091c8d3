"""Backbones: one interface over torchvision, timm and packaged offline weights."""

from __future__ import annotations

from transferlab.backbones.backbone import Backbone
from transferlab.backbones.timm_zoo import build_packaged_lite0, build_timm, efficientnet_lite0_state_dict
from transferlab.backbones.torchvision_zoo import FAMILIES as TORCHVISION_MODELS
from transferlab.backbones.torchvision_zoo import build_torchvision
from transferlab.backbones.weights import load_matching, read_state_dict
from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError

SOURCES = ("torchvision", "timm", "packaged")


def create_backbone(name: str, source: str = "torchvision", weights: str | None = "imagenet") -> Backbone:
    """Build a backbone with its classifier removed.

    Args:
        name: architecture, e.g. ``resnet50`` (torchvision), any timm name, or ``efficientnet_lite0`` (packaged).
        source: ``torchvision``, ``timm`` or ``packaged``.
        weights: ``imagenet``, ``none``, or a path to a state dict, safetensors file or transferlab checkpoint.

    Example:
        >>> backbone = create_backbone("efficientnet_lite0", source="packaged")
        >>> backbone.num_features, backbone.num_stages
        (1280, 8)
    """
    weights = "none" if weights is None else str(weights)
    if source not in SOURCES:
        raise TransferlabError(f"unknown model.source '{source}' (choose from {', '.join(SOURCES)})")
    if source == "packaged" and name != "efficientnet_lite0":
        raise TransferlabError(f"no packaged weights for '{name}': only efficientnet_lite0 ships in a package")
    pretrained = weights.lower() == "imagenet"
    builders = {"torchvision": build_torchvision, "timm": build_timm}
    if source == "packaged":
        backbone = build_packaged_lite0(pretrained)
    else:
        backbone = builders[source](name, pretrained)
    if weights.lower() not in ("imagenet", "none"):
        load_matching(backbone.model, read_state_dict(weights), source=weights)
    return backbone


__all__ = ["Backbone", "DataConfig", "create_backbone", "efficientnet_lite0_state_dict", "TORCHVISION_MODELS",
           "read_state_dict"]
