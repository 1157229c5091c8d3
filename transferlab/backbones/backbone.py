"""The one interface every pretrained network is wrapped in."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.contracts.checks import check_freeze_depth
from transferlab.contracts.data_config import DataConfig


class Backbone(nn.Module):
    """A feature extractor split into ordered stages, stem first.

    ``freeze_depth=k`` means "the first k stages" for every family, so sweeps over it are comparable.

    Args:
        model: network whose ``forward`` returns pooled features of shape ``(N, num_features)``.
        num_features: width of those features.
        stages: parameter names of ``model``, one list per stage, stem first; each parameter in exactly one.
        data_config: preprocessing the weights expect.
        name: architecture name, for logs and checkpoints.
    """

    def __init__(self, model: nn.Module, num_features: int, stages: list[list[str]], data_config: DataConfig,
                 name: str = ""):
        super().__init__()
        self.model = model
        self.num_features = num_features
        self.stages = [list(stage) for stage in stages if stage]
        self.data_config = data_config
        self.name = name
        self._check_stages()

    def _check_stages(self) -> None:
        owned = [n for stage in self.stages for n in stage]
        params = [n for n, _ in self.model.named_parameters()]
        if sorted(owned) != sorted(params):
            missing = sorted(set(params) - set(owned))[:3]
            raise AssertionError(f"stages of {self.name} do not cover each parameter once (e.g. {missing})")

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def stage_parameters(self, index: int) -> list[nn.Parameter]:
        """The parameters of stage ``index``."""
        lookup = dict(self.model.named_parameters())
        return [lookup[n] for n in self.stages[index]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def freeze(self, depth: int, key: str = "freeze_depth") -> None:
        """Make the first ``depth`` stages untrainable and the rest trainable (the one range check of a freeze
        depth; ``key`` names the setting in the error)."""
        check_freeze_depth(depth, self.num_stages, self.name, key)
        for i in range(self.num_stages):
            for p in self.stage_parameters(i):
                p.requires_grad_(i >= depth)

    def frozen_to_eval(self) -> None:
        """Put every module whose parameters are all frozen in eval mode, so BN statistics and dropout stay fixed."""
        _eval_frozen(self.model)


def _eval_frozen(module: nn.Module) -> None:
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        module.eval()
        return
    for child in module.children():
        _eval_frozen(child)
