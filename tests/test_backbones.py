"""Backbones: real packaged weights, stage layout, freezing, weight files and the offline errors."""

from __future__ import annotations

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata

from transferlab.backbones import TORCHVISION_MODELS, create_backbone, efficientnet_lite0_state_dict
from transferlab.backbones.torchvision_zoo import cached_weights_path
from transferlab.contracts.errors import TransferlabError
from transferlab.data.transforms import eval_transform

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_packaged_lite0_maps_every_tensor_by_order():
    state = efficientnet_lite0_state_dict()
    reference = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert list(state) == list(reference) and len(state) == 296
    assert all(state[k].shape == reference[k].shape for k in state)


def test_packaged_lite0_classifies_chelsea_as_a_cat():
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(efficientnet_lite0_state_dict())
    backbone = create_backbone("efficientnet_lite0", source="packaged")
    image = eval_transform(backbone.data_config)(Image.fromarray(skdata.chelsea())).unsqueeze(0)
    with torch.no_grad():
        probs = model.eval()(image).softmax(-1)[0]
        features = backbone.eval()(image)
    assert int(probs.argmax()) in IMAGENET_CATS and probs[list(IMAGENET_CATS)].sum() > 0.5
    # the backbone is the same network without its classifier
    torch.testing.assert_close(model.forward_head(model.forward_features(image), pre_logits=True), features)
    assert backbone.data_config.interpolation == "bicubic" and backbone.data_config.crop_pct == 0.875


@pytest.mark.parametrize("name", list(TORCHVISION_MODELS))
def test_torchvision_backbones_give_features(name):
    backbone = create_backbone(name, weights="none")
    with torch.no_grad():
        features = backbone.eval()(torch.randn(2, 3, 224, 224))
    assert features.shape == (2, backbone.num_features)
    assert backbone.num_stages >= 5 and backbone.data_config.input_size == 224


def test_timm_backbone_by_name_has_stages():
    backbone = create_backbone("resnet18", source="timm", weights="none")
    assert backbone.num_features == 512 and backbone.num_stages == 5
    assert backbone(torch.randn(1, 3, 64, 64)).shape == (1, 512)


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "efficientnet_lite0", "convnext_atto"])
def test_timm_num_features_is_what_forward_returns(name):
    """MobileNetV3 has a pre-logits conv_head: its features are head_hidden_size (1024) wide, not 288."""
    backbone = create_backbone(name, source="timm", weights="none")
    assert backbone.eval()(torch.randn(2, 3, 32, 32)).shape == (2, backbone.num_features)


@pytest.mark.parametrize("name,source,first_stages", [
    ("resnet18", "torchvision", [["conv1.", "bn1."], ["layer1."], ["layer2."]]),
    ("efficientnet_b0", "torchvision", [["features.0."], ["features.1."], ["features.2."]]),
    ("efficientnet_lite0", "packaged", [["conv_stem.", "bn1."], ["blocks.0."], ["blocks.1."]]),
])
def test_freeze_depth_freezes_exactly_the_first_k_stages(name, source, first_stages):
    backbone = create_backbone(name, source=source, weights="none")
    for i, prefixes in enumerate(first_stages):  # stages follow the architecture, stem first
        assert backbone.stages[i] and all(n.startswith(tuple(prefixes)) for n in backbone.stages[i])
    for depth in range(backbone.num_stages + 1):
        backbone.freeze(depth)
        for i in range(backbone.num_stages):
            assert all(p.requires_grad == (i >= depth) for p in backbone.stage_parameters(i))
    backbone.freeze(2)
    backbone.train()
    backbone.frozen_to_eval()
    frozen = {n for stage in backbone.stages[:2] for n in stage}
    for module_name, module in backbone.model.named_modules():
        own = [f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters()]
        if own and all(n in frozen for n in own):
            assert not module.training, module_name
    with pytest.raises(TransferlabError, match=rf"freeze_depth={backbone.num_stages + 1} is out of range"):
        backbone.freeze(backbone.num_stages + 1)


def test_offline_without_cached_weights_names_the_cache_file(offline_torch_home):
    with pytest.raises(TransferlabError) as err:
        create_backbone("resnet18")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and str(offline_torch_home) in message
    assert "model.weights=none" in message and "\n" not in message


def test_cached_torchvision_weights_are_used(offline_torch_home):
    import torchvision

    reference = torchvision.models.resnet18()
    path = cached_weights_path(torchvision.models.ResNet18_Weights.DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    backbone = create_backbone("resnet18")
    torch.testing.assert_close(backbone.model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_timm_offline_error_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read once, when the hub was imported
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(TransferlabError, match="not in the Hugging Face cache") as err:
        create_backbone("resnet18", source="timm")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_from_a_file(tmp_path, suffix):
    source = create_backbone("resnet18", weights="none")
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone("resnet18", weights=str(path))
    for key, value in state.items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_weights_file_problems_are_clear(tmp_path):
    with pytest.raises(TransferlabError, match="weights file not found: .*missing.pth"):
        create_backbone("resnet18", weights=str(tmp_path / "missing.pth"))
    other = tmp_path / "other.pth"
    torch.save(create_backbone("efficientnet_lite0", source="packaged", weights="none").model.state_dict(), other)
    with pytest.raises(TransferlabError, match="does not fit this backbone"):
        create_backbone("resnet18", weights=str(other))
    pickled = tmp_path / "pickled.pth"
    torch.save({"payload": object()}, pickled)
    with pytest.raises(TransferlabError, match="cannot read weights"):
        create_backbone("resnet18", weights=str(pickled))


def test_unknown_names_are_clear():
    with pytest.raises(TransferlabError, match="unknown torchvision backbone 'resnet5'"):
        create_backbone("resnet5")
    with pytest.raises(TransferlabError, match="unknown timm model 'no_such_net'"):
        create_backbone("no_such_net", source="timm")
