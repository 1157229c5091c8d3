"""seed_torch: the same draws as torch.manual_seed, for augmentation and dropout alike."""

import torch
from torch import nn

from transferlab.rng import seed_torch


def test_seed_torch_draws_what_manual_seed_draws():
    torch.manual_seed(7)
    expected = torch.rand(5), torch.randint(0, 100, (3,)), nn.functional.dropout(torch.ones(8), 0.5)
    seed_torch(7)
    got = torch.rand(5), torch.randint(0, 100, (3,)), nn.functional.dropout(torch.ones(8), 0.5)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    seed_torch(8)
    assert not torch.equal(torch.rand(5), expected[0])
