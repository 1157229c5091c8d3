"""Cheap reseeding of torch's generators, for the per-sample and per-step seeds that make runs resumable."""

from __future__ import annotations

import torch


def seed_torch(seed: int) -> None:
    """``torch.manual_seed(seed)`` for the generators in use, without its hidden cost.

    While CUDA is uninitialised (every CPU run, every data-loading worker), ``torch.manual_seed`` queues a lazy CUDA
    seeding together with a formatted stack trace: 0.2-2 ms a call, deep inside Lightning's loops, which per training
    sample cost more than a linear head's whole step. The CPU generator is seeded here directly, and CUDA's only once
    it is initialised (by then the model lives there and dropout draws from it).
    """
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)
