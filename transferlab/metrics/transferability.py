"""Transferability scores of pretrained features for a labelled target task, computed without training.

- LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian linear model on the features, maximised
  over its prior and noise precisions by the paper's fixed-point iteration; averaged over one-vs-rest targets.
- LEEP (Nguyen et al., ICML 2020): the log expected empirical prediction of the target labels through the source
  classifier's label distribution. At most 0; 0 when source labels predict target labels perfectly.
"""

from __future__ import annotations

import numpy as np


def _evidence(s2: np.ndarray, z2: np.ndarray, yy: float, n: int, d: int, steps: int = 100) -> float:
    """Maximised log evidence per sample for one target ``y``: ``s2`` eigenvalues of F^T F, ``z2`` = (V^T F^T y)^2."""
    alpha, beta = 1.0, 1.0
    for _ in range(steps):
        denom = alpha + beta * s2
        gamma = float(np.sum(beta * s2 / denom))
        m2 = float(np.sum(beta**2 * z2 / denom**2))  # ||m||^2, m the posterior mean
        res2 = max(yy - 2 * beta * float(np.sum(z2 / denom)) + float(np.sum(beta**2 * s2 * z2 / denom**2)), 1e-12)
        new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / res2
        converged = abs(new_alpha - alpha) / alpha < 1e-5 and abs(new_beta - beta) / beta < 1e-5
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    denom = alpha + beta * s2
    m2 = float(np.sum(beta**2 * z2 / denom**2))
    res2 = max(yy - 2 * beta * float(np.sum(z2 / denom)) + float(np.sum(beta**2 * s2 * z2 / denom**2)), 1e-12)
    evidence = (n * np.log(beta) + d * np.log(alpha) - n * np.log(2 * np.pi) - beta * res2 - alpha * m2
                - float(np.sum(np.log(denom)))) / 2
    return float(evidence / n)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` ``(n, d)`` for integer ``labels`` ``(n,)``: mean per-class evidence per sample."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    s2, v = np.linalg.eigh(f.T @ f)
    s2 = np.clip(s2, 0, None)
    scores = []
    for k in np.unique(labels):
        y = (np.asarray(labels) == k).astype(np.float64)
        z2 = (v.T @ (f.T @ y)) ** 2
        scores.append(_evidence(s2, z2, float(y @ y), n, d))
    return float(np.mean(scores))


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of source-classifier probabilities ``(n, Z)`` for integer target ``labels`` ``(n,)``."""
    theta = np.asarray(source_probs, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    joint = np.stack([theta[labels == k].sum(axis=0) for k in classes]) / len(labels)  # P(y, z): (K, Z)
    conditional = joint / np.clip(joint.sum(axis=0, keepdims=True), 1e-12, None)  # P(y | z)
    index = np.searchsorted(classes, labels)
    expected = np.einsum("nz,nz->n", theta, conditional[index])
    return float(np.mean(np.log(np.clip(expected, 1e-12, None))))
