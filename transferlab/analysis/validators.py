"""Label-free validators for unsupervised domain adaptation: pure functions on tensors, higher is better.

They follow pytorch-adapt's ``IMValidator``, ``SNDValidator`` and ``DeepEmbeddedValidator`` (Musgrave et al.,
"Benchmarking validation methods for unsupervised domain adaptation", 2022), which cite the papers below. None of
them reads a target label; the oracle (target accuracy) is reported beside them only to measure how far they are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) along the last dimension."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1)


def information_maximization(probs: torch.Tensor) -> float:
    """IM score (Shi & Sha 2012; SHOT): entropy of the mean prediction minus the mean prediction entropy.

    High when predictions are confident (low per-sample entropy) and diverse (high entropy of the class marginal).

    Args:
        probs: ``(N, C)`` target softmax probabilities.
    """
    probs = probs.float()
    return float(_entropy(probs.mean(dim=0)) - _entropy(probs).mean())


def soft_neighborhood_density(probs: torch.Tensor, temperature: float = 0.05, chunk: int = 1000) -> float:
    """SND (Saito et al. 2021): mean entropy of each sample's softmax-normalised similarity to all the others.

    Similarities are cosine similarities of the L2-normalised target softmax predictions, self excluded, divided by
    ``temperature``; a high entropy means dense neighbourhoods (well-clustered predictions).

    Args:
        probs: ``(N, C)`` target softmax probabilities, ``N >= 2``.
        temperature: softmax temperature ``tau``.
        chunk: rows of the ``(N, N)`` similarity matrix computed at a time (memory).
    """
    unit = F.normalize(probs.float(), dim=1)
    n, entropies = len(unit), []
    for start in range(0, n, chunk):
        sim = unit[start:start + chunk] @ unit.T
        rows = torch.arange(len(sim))
        sim[rows, rows + start] = float("-inf")  # exclude self
        entropies.append(_entropy(F.softmax(sim / temperature, dim=1)))
    return float(torch.cat(entropies).mean())


def domain_importance_weights(source: torch.Tensor, target: torch.Tensor, seed: int = 0,
                              clip: float = 1e-3) -> torch.Tensor:
    """Importance weights ``w(x) = p(target|x) / p(source|x) * Ns / Nt`` of the ``source`` samples.

    A standardised logistic regression is fitted on source (0) vs target (1) features and applied to the source
    samples; the probabilities are clipped to ``[clip, 1 - clip]`` so one sample cannot dominate. Deterministic
    for given inputs and ``seed``.
    """
    x = torch.cat([source, target]).float().cpu().numpy()
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    classifier.fit(x, y)
    p_target = np.clip(classifier.predict_proba(x[: len(source)])[:, 1], clip, 1 - clip)
    return torch.from_numpy(p_target / (1 - p_target) * (len(source) / len(target))).float()


def dev_risk(weights: torch.Tensor, losses: torch.Tensor) -> float:
    """Deep Embedded Validation risk (You et al. 2019): importance-weighted source validation loss with the
    control-variate correction ``mean(w*l) + eta*mean(w) - eta``, ``eta = -cov(w*l, w) / var(w)``. Lower is better.

    Args:
        weights: ``(N,)`` importance weights of the source validation samples (``domain_importance_weights``).
        losses: ``(N,)`` per-sample losses (e.g. cross-entropy) of those samples.
    """
    w, loss = weights.double().flatten(), losses.double().flatten()
    weighted = w * loss
    cov = torch.cov(torch.stack([weighted, w]))[0, 1]
    eta = -cov / (w.var() + 1e-6)
    return float(weighted.mean() + eta * w.mean() - eta)


def proxy_a_distance(source: torch.Tensor, target: torch.Tensor, seed: int = 0) -> float:
    """Proxy A-distance (Ben-David et al. 2007): ``2 (1 - 2 err)`` of a linear source-vs-target classifier, trained
    on half of each domain and scored on the other half. 0 = indistinguishable domains, 2 = perfectly separable."""
    x = torch.cat([source, target]).float().cpu().numpy()
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    error = 1.0 - classifier.fit(x_fit, y_fit).score(x_test, y_test)
    return 2.0 * (1.0 - 2.0 * error)


def label_free_scores(source_features: torch.Tensor, source_losses: torch.Tensor, target_features: torch.Tensor,
                      target_probs: torch.Tensor, temperature: float = 0.05) -> dict[str, float]:
    """Every label-free validator of one validation pass, named as logged (all higher-is-better).

    ``neg_dev_risk`` is the DEV risk negated, so that every score is maximised.
    """
    weights = domain_importance_weights(source_features, target_features)
    return {"im": information_maximization(target_probs),
            "snd": soft_neighborhood_density(target_probs, temperature),
            "neg_dev_risk": -dev_risk(weights, source_losses)}
