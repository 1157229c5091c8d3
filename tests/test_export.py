"""export: safetensors + sidecar, and an ONNX graph whose logits match PyTorch."""

from __future__ import annotations

import json
import os
import stat
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from transferlab.atomic import write_text
from transferlab.experiment import load_module, train
from transferlab.export import export, main


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
    assert sidecar["data_config"]["input_size"] == 32 and len(sidecar["data_config"]["mean"]) == 3
    assert "image_size" not in sidecar  # one key for the size the graph was traced at


def test_safetensors_weights_equal_the_checkpoint(trained_ckpt, tmp_path):
    path = export(str(trained_ckpt), "safetensors", str(tmp_path / "m.safetensors"))
    saved = load_file(str(path))
    state = torch.load(trained_ckpt, weights_only=True)["state_dict"]
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in state)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("format", ["onnx", "safetensors"])
def test_exported_files_and_sidecars_are_0644(trained_ckpt, tmp_path, umask_022, format):
    path = export(str(trained_ckpt), format, str(tmp_path / f"m.{format}"))
    assert mode(path) == 0o644 and mode(f"{path}.json") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m.{format}", f"m.{format}.json"]  # no temp file left


def test_atomic_writes_honour_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
        with open(tmp_path / "b.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt") == 0o640


@pytest.mark.parametrize("package", ["onnxruntime", "onnx"])
def test_onnx_without_its_packages_is_one_line_and_writes_nothing(trained_ckpt, tmp_path, monkeypatch, capsys,
                                                                  package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: importing it raises ImportError
    output = tmp_path / "out" / "m.onnx"
    assert main([f"ckpt={trained_ckpt}", "format=onnx", f"output={output}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"transferlab: error: format=onnx needs the {package} package, not installed here: "
                          f"pip install onnx onnxruntime")
    assert '.[dev]' in err and "format=safetensors" in err
    assert not output.exists() and not output.with_name("m.onnx.json").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
