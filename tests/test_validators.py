"""Label-free DA validators and the proxy A-distance: pure functions checked against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferlab.metrics.validators import (
    dev_risk,
    domain_importance_weights,
    information_maximization,
    label_free_scores,
    proxy_a_distance,
    soft_neighborhood_density,
)


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
    val = torch.cat([torch.randn(30, 4, generator=gen), torch.randn(30, 4, generator=gen) + 4])  # near, far
    weights = domain_importance_weights(torch.cat([near, far]), target, val)
    assert weights.shape == (60,) and weights[:30].mean() > 10 * weights[30:].mean()
    assert torch.equal(weights, domain_importance_weights(torch.cat([near, far]), target, val))  # deterministic


def _softplus_loss(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A per-sample loss that depends on the features (so a bad weighting shows in DEV)."""
    return torch.nn.functional.softplus(x @ (torch.randn(x.shape[1], generator=gen) / 16))


@pytest.mark.parametrize(("n_train", "n_val", "seeds"), [(180, 180, range(4)), (1000, 500, range(2))])
def test_identical_domains_get_unit_weights_and_dev_is_the_plain_mean_loss(n_train, n_val, seeds):
    # The case: fitted in-sample on 180 + 180 rows of 256-d, the mean weight was ~0.1 and DEV 5-17% off.
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        source_train, target_train, source_val = (torch.randn(n, 256, generator=gen) for n in (n_train, n_train, n_val))
        weights = domain_importance_weights(source_train, target_train, source_val, seed=seed)
        losses = _softplus_loss(source_val, gen)
        assert 0.85 < float(weights.mean()) < 1.15
        assert dev_risk(weights, losses) == pytest.approx(float(losses.mean()), rel=0.05)


def _ranks(a: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(a))


def test_weights_track_a_known_density_ratio_and_dev_moves_to_the_target_risk():
    # Source N(0, I), target N(delta, I) in 5-d: the true ratio is exp(delta.x - |delta|^2 / 2). Unequal training
    # counts check the Ns / Nt prior correction.
    delta = torch.tensor([1.0, 0.5, 0.0, 0.0, 0.0])
    grid = torch.linspace(-10, 12, 200001, dtype=torch.float64)
    target_density = torch.exp(-(grid - 1.0) ** 2 / 2) / math.sqrt(2 * math.pi)
    target_risk = float(torch.trapezoid(torch.sigmoid(2 * grid) * target_density, grid))  # E_target[sigmoid(2 x_0)]
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        source_train, source_val = torch.randn(1200, 5, generator=gen), torch.randn(1000, 5, generator=gen)
        target_train = torch.randn(800, 5, generator=gen) + delta
        weights = domain_importance_weights(source_train, target_train, source_val, seed=seed).numpy()
        true = torch.exp(source_val @ delta - delta.square().sum() / 2).numpy()
        assert np.corrcoef(weights, true)[0, 1] > 0.9
        assert np.corrcoef(_ranks(weights), _ranks(true))[0, 1] > 0.9  # Spearman
        assert weights.mean() == pytest.approx(true.mean(), rel=0.15)
        losses = torch.sigmoid(2 * source_val[:, 0])
        plain_gap = abs(float(losses.mean()) - target_risk)
        assert plain_gap > 0.2  # the shift matters for this loss
        assert abs(dev_risk(torch.from_numpy(weights), losses) - target_risk) < 0.25 * plain_gap


def test_weights_are_fitted_on_training_features_only():
    gen = torch.Generator().manual_seed(6)
    source_train, target_train = torch.randn(100, 8, generator=gen), torch.randn(100, 8, generator=gen) + 0.5
    source_val = torch.randn(50, 8, generator=gen)
    outliers = torch.full((5, 8), 1e3)
    weights = domain_importance_weights(source_train, target_train, source_val)
    with_outliers = domain_importance_weights(source_train, target_train, torch.cat([source_val, outliers]))
    assert torch.allclose(with_outliers[:50], weights, rtol=1e-6, atol=0)
    assert not torch.allclose(weights, torch.ones(50), rtol=0.1)  # a real shift, so the weights are not constant


def test_proxy_a_distance_separates_far_domains_and_not_identical_ones():
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(200, 8, generator=gen), torch.randn(200, 8, generator=gen)
    assert proxy_a_distance(a, b) < 0.5
    assert proxy_a_distance(a, b + 5) == pytest.approx(2.0)


def test_label_free_scores_are_named_as_logged():
    gen = torch.Generator().manual_seed(5)
    source_val, source_losses = torch.randn(20, 6, generator=gen), torch.rand(20, generator=gen)
    probs = torch.randn(30, 3, generator=gen).softmax(1)
    scores = label_free_scores(source_train_features=torch.randn(40, 6, generator=gen),
                               target_train_features=torch.randn(50, 6, generator=gen),
                               source_val_features=source_val, source_val_losses=source_losses,
                               target_val_probs=probs, temperature=0.05)
    assert set(scores) == {"im", "snd", "neg_dev_risk"} and all(math.isfinite(v) for v in scores.values())
    assert scores["im"] == information_maximization(probs) and scores["snd"] == soft_neighborhood_density(probs)
