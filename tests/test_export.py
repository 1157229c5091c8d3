"""export: safetensors + sidecar, and an ONNX graph whose logits match PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from transferlab.experiment import load_module, train
from transferlab.export import export


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    from conftest import FAST, compose_config

    run = tmp_path_factory.mktemp("export") / "run"
    cfg = compose_config(run, *FAST, "test=false", "logger=none", "callbacks.evaluation_figures=null")
    train(cfg)
    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.masked_copy(cfg, ["model", "strategy", "data"]), run / ".hydra" / "config.yaml")
    return run / "checkpoints" / "last.ckpt"


def test_onnx_logits_match_pytorch(trained_ckpt, tmp_path):
    path = export(str(trained_ckpt), "onnx", str(tmp_path / "m.onnx"))
    module, names, _, _ = load_module(trained_ckpt)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(images).numpy()
    got = onnxruntime.InferenceSession(str(path)).run(None, {"images": images.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["class_names"] == names and sidecar["backbone"] == "efficientnet_lite0"
    assert sidecar["image_size"] == 32 and len(sidecar["data_config"]["mean"]) == 3


def test_safetensors_weights_equal_the_checkpoint(trained_ckpt, tmp_path):
    path = export(str(trained_ckpt), "safetensors", str(tmp_path / "m.safetensors"))
    saved = load_file(str(path))
    state = torch.load(trained_ckpt, weights_only=True)["state_dict"]
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in state)
