"""Checkpoints from elsewhere: pickle payloads are refused unrun, a head for other classes is a clear error."""

from __future__ import annotations

import os

import pytest
import torch

from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import train


class Payload:
    """Unpickling this would create ``path``: the marker tells whether the payload ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(make_cfg, tmp_path):
    marker, ckpt = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, ckpt)
    with pytest.raises(TransferlabError, match=f"resume={ckpt}: unreadable checkpoint"):
        train(make_cfg(f"resume={ckpt}", run="victim"))
    assert not marker.exists()


def test_checkpoint_head_for_other_classes_is_a_clear_error(make_cfg, tmp_path):
    train(make_cfg("test=false", run="digits"))
    ckpt = torch.load(tmp_path / "digits" / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["state_dict"]["head.0.weight"] = ckpt["state_dict"]["head.0.weight"][:3]
    ckpt["state_dict"]["head.0.bias"] = ckpt["state_dict"]["head.0.bias"][:3]
    ckpt["transferlab"]["class_names"] = None
    three = tmp_path / "three.ckpt"
    torch.save(ckpt, three)
    with pytest.raises(TransferlabError, match=r"checkpoint tensor head.0.weight has shape \(3, 1280\) .* 10 classes"):
        train(make_cfg(f"resume={three}", run="resumed"))
