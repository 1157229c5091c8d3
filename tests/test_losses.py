"""Loss components against values worked out by hand on tiny tensors (scalar arithmetic, not the implementation)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transferlab.losses import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    MinimumClassConfusionLoss,
    MultilinearMap,
    RandomizedMultilinearMap,
)


def softplus(z: float) -> float:
    """BCE-with-logits of label 0 at logit z; label 1 is softplus(-z)."""
    return math.log1p(math.exp(z))


def entropy(*p: float) -> float:
    return -sum(q * math.log(q) for q in p)


def linear(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weights), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
        layer.bias.zero_()
    return layer


def test_domain_adversarial_loss_and_its_reversed_gradient():
    loss_fn = DomainAdversarialLoss(linear([1.0, -1.0]))
    source = torch.tensor([[1.0, 0.0]], requires_grad=True)  # logit 1, label 0
    target = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # logits -1 and 0, label 1
    loss = loss_fn(source, target, coeff=0.5)
    expected = 0.5 * (softplus(1.0) + 0.5 * (softplus(1.0) + softplus(0.0)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    d_logit = 0.5 * (1 / (1 + math.exp(-1.0)))  # d/dz softplus(z) = sigmoid(z), source half weighs 1/2
    assert source.grad[0].tolist() == pytest.approx([-0.5 * d_logit, 0.5 * d_logit], abs=1e-6)  # reversed, x coeff
    assert loss_fn.labels.tolist() == [0, 1, 1] and loss_fn.logits.tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_each_domain_counts_one_half_whatever_the_batch_sizes():
    loss_fn = DomainAdversarialLoss(linear([1.0]))
    one = loss_fn(torch.tensor([[0.0]]), torch.tensor([[0.0]] * 7))
    assert one.item() == pytest.approx(math.log(2), abs=1e-6)


def test_multilinear_map_is_the_flattened_outer_product():
    f, g = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25, 0.75]])
    assert MultilinearMap()(f, g).tolist() == [[0.25, 0.5, 0.75, 1.5]]


def test_randomized_map_uses_its_fixed_matrices_and_is_seeded():
    m = RandomizedMultilinearMap(2, 2, out_dim=2)
    m.R_f.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    m.R_g.copy_(torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    out = m(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25, 0.75]]))  # [1, 2] * [0.25, 1.75] / sqrt 2
    assert out[0].tolist() == pytest.approx([0.25 / math.sqrt(2), 3.5 / math.sqrt(2)])
    a, b, c = (RandomizedMultilinearMap(8, 3, 16, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.R_f, b.R_f) and not torch.equal(a.R_f, c.R_f)
    assert set(a.state_dict()) == {"R_f", "R_g"}  # buffers: a checkpoint carries the map


def test_randomized_above_4096_dimensions_by_default():
    assert isinstance(ConditionalDomainAdversarialLoss(nn.Identity(), 256, 16).map, MultilinearMap)  # 4,096
    assert isinstance(ConditionalDomainAdversarialLoss(nn.Identity(), 256, 17).map, RandomizedMultilinearMap)
    assert ConditionalDomainAdversarialLoss.map_dim(256, 10) == 2560
    assert ConditionalDomainAdversarialLoss.map_dim(512, 10) == 1024


def test_cdan_e_loss_by_hand():
    """One source sample, two target samples of different certainty: f is 1-d, two classes, so the map is g * f."""
    loss_fn = ConditionalDomainAdversarialLoss(linear([1.0, 1.0]), features_dim=1, num_classes=2)
    source_f, source_logits = torch.tensor([[1.0]]), torch.tensor([[0.0, 0.0]])  # g = (.5, .5): map (.5, .5), z = 1
    target_f = torch.tensor([[2.0], [1.0]])
    target_logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # g = (.75, .25): z = 2; g = (.5, .5): z = 1
    loss = loss_fn(source_f, source_logits, target_f, target_logits)
    w1, w2 = 1 + math.exp(-entropy(0.75, 0.25)), 1 + math.exp(-entropy(0.5, 0.5))
    target = (w1 * softplus(-2.0) + w2 * softplus(-1.0)) / (w1 + w2)
    assert loss.item() == pytest.approx(0.5 * (softplus(1.0) + target), abs=1e-4)  # eps in the entropy: 1e-5
    plain = ConditionalDomainAdversarialLoss(linear([1.0, 1.0]), 1, 2, entropy_conditioning=False)
    unweighted = plain(source_f, source_logits, target_f, target_logits)
    assert unweighted.item() == pytest.approx(0.5 * (softplus(1.0) + 0.5 * (softplus(-2.0) + softplus(-1.0))),
                                              abs=1e-6)


def test_cdan_predictions_are_detached_and_features_get_the_reversed_gradient():
    loss_fn = ConditionalDomainAdversarialLoss(linear([1.0, 1.0]), 1, 2)
    f = torch.tensor([[1.0]], requires_grad=True)
    logits = torch.tensor([[0.3, -0.2]], requires_grad=True)
    loss_fn(f, logits, torch.tensor([[2.0]]), torch.tensor([[0.0, 1.0]]), coeff=1.0).backward()
    assert logits.grad is None  # g is detached, as in the paper's code
    assert f.grad.item() < 0  # the source's loss rises with f; reversed, its gradient is negative


def test_mcc_loss_by_hand():
    logits = torch.tensor([[2.5 * math.log(3.0), 0.0], [0.0, 0.0]])  # /T=2.5 -> p1 = (.75, .25), p2 = (.5, .5)
    w1, w2 = 1 + math.exp(-entropy(0.75, 0.25)), 1 + math.exp(-entropy(0.5, 0.5))
    w1, w2 = 2 * w1 / (w1 + w2), 2 * w2 / (w1 + w2)
    c00 = w1 * 0.75 * 0.75 + w2 * 0.25
    c01 = w1 * 0.75 * 0.25 + w2 * 0.25  # = c10
    c11 = w1 * 0.25 * 0.25 + w2 * 0.25
    expected = (c01 / (c00 + c01) + c01 / (c01 + c11)) / 2
    assert MinimumClassConfusionLoss(2.5)(logits).item() == pytest.approx(expected, abs=1e-4)


def test_mcc_is_zero_for_confident_distinct_predictions_and_largest_for_uniform_ones():
    mcc = MinimumClassConfusionLoss(temperature=1.0)
    confident = torch.tensor([[50.0, 0.0, 0.0], [0.0, 50.0, 0.0], [0.0, 0.0, 50.0]])
    assert mcc(confident).item() == pytest.approx(0.0, abs=1e-6)
    assert mcc(torch.zeros(4, 3)).item() == pytest.approx(2 / 3, abs=1e-6)  # every column (1/3, 1/3, 1/3)
    logits = torch.randn(6, 3, requires_grad=True)
    mcc(logits).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [lambda: DomainAdversarialLoss(nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4),
                                                                              nn.Linear(4, 1))),
                                  lambda: ConditionalDomainAdversarialLoss(nn.Linear(24, 1), 8, 3)])
def test_adversarial_losses_under_bf16_autocast(make):
    loss_fn = make()
    source = torch.randn(5, 8, requires_grad=True)
    target = torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if isinstance(loss_fn, ConditionalDomainAdversarialLoss):
            loss = loss_fn(source, torch.randn(5, 3), target, torch.randn(3, 3), coeff=0.5)
        else:
            loss = loss_fn(source, target, coeff=0.5)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(source.grad).all()


def test_mcc_under_bf16_autocast():
    logits = torch.randn(6, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = MinimumClassConfusionLoss()(logits.to(torch.bfloat16))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
