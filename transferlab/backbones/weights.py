"""Loading backbone weights from files: state dicts, safetensors and transferlab checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from transferlab.contracts.errors import TransferlabError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``path`` safely (``weights_only=True``; pickled code is refused).

    A transferlab/Lightning checkpoint yields its ``backbone.model.*`` tensors, prefix stripped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TransferlabError(f"weights file not found: {path} (give an existing .pth/.pt/.ckpt/.safetensors path, "
                               "or model.weights=imagenet|none)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, pickle payload, not a torch file at all
        raise TransferlabError(f"cannot read weights from {path}: not a complete file saved by torch.save "
                               f"({type(err).__name__}); give a .pth/.pt/.ckpt saved by torch.save, a .safetensors "
                               f"file, or model.weights=imagenet|none") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
        prefix = "backbone.model."
        if any(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TransferlabError(f"{path} holds no state dict of tensors")
    return obj


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; classifier tensors the backbone dropped are ignored, anything else missing is an
    error."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state]
    if missing:
        raise TransferlabError(f"{source} does not fit this backbone: {len(missing)} tensors missing "
                               f"(first: {missing[0]}); was it saved from another architecture?")
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise TransferlabError(f"{source} does not fit this backbone: shape of {bad[0]} is "
                               f"{tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}")
    model.load_state_dict(state, strict=True)
