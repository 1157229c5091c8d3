"""Label-free DA validators and the proxy A-distance: pure functions checked against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferlab.analysis.validators import (dev_risk, domain_importance_weights, information_maximization,
                                             label_free_scores, proxy_a_distance, soft_neighborhood_density)


def test_im_is_log_c_for_confident_diverse_and_zero_for_uniform_or_collapsed():
    eye = torch.eye(4).repeat(5, 1)  # confident, all classes equally often
    assert information_maximization(eye) == pytest.approx(math.log(4), abs=1e-5)
    assert information_maximization(torch.full((8, 4), 0.25)) == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.zeros(8, 4)
    collapsed[:, 2] = 1
    assert information_maximization(collapsed) == pytest.approx(0.0, abs=1e-5)


def test_snd_matches_a_direct_implementation_and_is_chunk_invariant():
    probs = torch.randn(37, 5, generator=torch.Generator().manual_seed(0)).softmax(dim=1)
    unit = probs / probs.norm(dim=1, keepdim=True)
    expected = []
    for i in range(len(unit)):
        sims = torch.stack([unit[i] @ unit[j] for j in range(len(unit)) if j != i]) / 0.05
        p = sims.softmax(dim=0)
        expected.append(-(p * p.log()).sum())
    assert soft_neighborhood_density(probs) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    assert soft_neighborhood_density(probs, chunk=4) == pytest.approx(soft_neighborhood_density(probs), rel=1e-6)


def test_dev_risk_with_equal_weights_is_the_mean_loss_and_matches_the_reference_formula():
    losses = torch.rand(50, generator=torch.Generator().manual_seed(1))
    assert dev_risk(torch.ones(50), losses) == pytest.approx(float(losses.mean()), rel=1e-6)
    w = torch.rand(50, generator=torch.Generator().manual_seed(2)) * 3
    weighted = (w * losses).numpy()
    eta = -np.cov(np.stack([weighted, w.numpy()]))[0, 1] / (np.var(w.numpy(), ddof=1) + 1e-6)
    assert dev_risk(w, losses) == pytest.approx(weighted.mean() + eta * w.numpy().mean() - eta, rel=1e-6)


def test_importance_weights_favour_source_samples_that_look_like_target():
    gen = torch.Generator().manual_seed(3)
    near, far = torch.randn(40, 4, generator=gen), torch.randn(40, 4, generator=gen) + 4
    target = torch.randn(60, 4, generator=gen)
    weights = domain_importance_weights(torch.cat([near, far]), target)
    assert weights[:40].mean() > 10 * weights[40:].mean()
    assert torch.equal(weights, domain_importance_weights(torch.cat([near, far]), target))  # deterministic


def test_proxy_a_distance_separates_far_domains_and_not_identical_ones():
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(200, 8, generator=gen), torch.randn(200, 8, generator=gen)
    assert proxy_a_distance(a, b) < 0.5
    assert proxy_a_distance(a, b + 5) == pytest.approx(2.0)


def test_label_free_scores_are_named_as_logged():
    gen = torch.Generator().manual_seed(5)
    scores = label_free_scores(torch.randn(20, 6, generator=gen), torch.rand(20, generator=gen),
                               torch.randn(30, 6, generator=gen), torch.randn(30, 3, generator=gen).softmax(1))
    assert set(scores) == {"im", "snd", "neg_dev_risk"} and all(math.isfinite(v) for v in scores.values())
