"""The one loop that runs a network over a loader for its outputs: feature caches, transferability scores, reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from transferlab.data.on_device import materialize

Outputs = torch.Tensor | Mapping[str, torch.Tensor]


@torch.no_grad()
def extract(forward: Callable[[torch.Tensor], Outputs], loader: Iterable, device: torch.device | str | None = None,
            max_samples: int | None = None, module: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``forward`` over every ``(images, labels)`` batch of ``loader``, its outputs on the CPU, concatenated in order.

    Args:
        forward: ``images -> {name: tensor}``, or a tensor (stored as ``"features"``).
        loader: yields ``(images, labels)``; labels are stored as ``"labels"`` (a ``{task: labels}`` dict as
            ``"labels/<task>"``).
        device: where the images go before ``forward`` (default: where the loader leaves them).
        max_samples: stop once this many samples are collected, and keep exactly that many.
        module: put in eval mode for the loop, its training mode restored afterwards; default ``forward`` itself
            when it is a module, or the module a bound method belongs to.

    Runs under ``torch.no_grad()``.
    """
    if module is None:
        module = forward if isinstance(forward, nn.Module) else getattr(forward, "__self__", None)
    module = module if isinstance(module, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    seen = 0
    try:
        for batch in loader:
            images, labels = materialize(batch)  # a data.on_device index batch becomes images
            if device is not None:
                images = images.to(device, non_blocking=True)
            outputs = forward(images)
            outputs = {"features": outputs} if isinstance(outputs, torch.Tensor) else dict(outputs)
            if isinstance(labels, Mapping):
                outputs.update({f"labels/{task}": value for task, value in labels.items()})
            else:
                outputs["labels"] = labels
            for name, value in outputs.items():
                parts.setdefault(name, []).append(torch.as_tensor(value).detach().cpu())
            seen += len(images)
            if max_samples is not None and seen >= max_samples:
                break
    finally:
        if module is not None:
            module.train(was_training)
    return {name: torch.cat(values)[:max_samples] for name, values in parts.items()}
