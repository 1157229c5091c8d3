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
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
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


DOMAIN_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # inverse L2 strengths tried for the domain classifier


def _domain_classifier(C: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))


def domain_importance_weights(source_train: torch.Tensor, target_train: torch.Tensor, source_val: torch.Tensor,
                              seed: int = 0, Cs: tuple[float, ...] = DOMAIN_CS, clip: float = 1e-3,
                              folds: int = 3) -> torch.Tensor:
    """Importance weights ``w(x) = p(target|x) / p(source|x) * Ns / Nt`` of held-out source validation samples.

    As in DEV (You et al. 2019, "Towards Accurate Model Selection in Deep Unsupervised Domain Adaptation"), the
    domain classifier (standardised logistic regression) is fitted on *training* features only, source (0) vs
    target (1), and applied to the held-out ``source_val`` samples; ``Ns``, ``Nt`` are the training counts. Fitting
    it on the very samples it weights overfits (in 256-d with a few hundred rows, identical domains got mean weight
    ~0.1 instead of 1).

    ``C`` is chosen from ``Cs`` by the lowest held-out log-loss of a stratified ``folds``-fold split of the
    training features (ties to the smaller ``C``), then refitted on all of them. Log-loss, not accuracy: the
    weights use the probabilities themselves, and log-loss penalises over-confident ones, while accuracy is flat
    (~0.5 at every ``C``) when the domains overlap. Probabilities are clipped to ``[clip, 1 - clip]`` so one sample
    cannot dominate. Deterministic for given inputs and ``seed``.

    Args:
        source_train: ``(Ns, D)`` source training features.
        target_train: ``(Nt, D)`` target training features.
        source_val: ``(M, D)`` source validation features to weight; never used for fitting.
        seed: seed of the cross-validation split (and the classifier's ``random_state``).
        Cs: inverse regularisation strengths tried.
        clip: probability clipping.
        folds: cross-validation folds (fewer if a domain has fewer rows; the smallest ``C`` if under 2).

    Returns:
        ``(M,)`` float weights.
    """
    if not len(source_train) or not len(target_train):
        raise ValueError("domain_importance_weights needs source and target training features")
    x = torch.cat([source_train, target_train]).double().cpu().numpy()
    y = np.r_[np.zeros(len(source_train)), np.ones(len(target_train))]
    Cs = sorted(Cs)
    folds = min(folds, len(source_train), len(target_train))
    best = Cs[0]
    if folds >= 2 and len(Cs) > 1:
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y)
        held_out = np.zeros(len(Cs))
        for fit, test in split:
            for i, C in enumerate(Cs):
                p = _domain_classifier(C, seed).fit(x[fit], y[fit]).predict_proba(x[test])[:, 1]
                held_out[i] += log_loss(y[test], np.clip(p, clip, 1 - clip), labels=[0, 1])
        best = Cs[int(np.argmin(held_out))]
    classifier = _domain_classifier(best, seed).fit(x, y)
    p_target = np.clip(classifier.predict_proba(source_val.double().cpu().numpy())[:, 1], clip, 1 - clip)
    return torch.from_numpy(p_target / (1 - p_target) * (len(source_train) / len(target_train))).float()


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


def label_free_scores(source_train_features: torch.Tensor, target_train_features: torch.Tensor,
                      source_val_features: torch.Tensor, source_val_losses: torch.Tensor,
                      target_val_probs: torch.Tensor, temperature: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Every label-free validator of one validation pass, named as logged (all higher-is-better).

    IM and SND score the target validation predictions. ``neg_dev_risk`` is the DEV risk (You et al. 2019) of the
    source validation losses, negated so that every score is maximised; its importance weights come from a domain
    classifier fitted on the training features of both domains (``domain_importance_weights``).
    """
    weights = domain_importance_weights(source_train_features, target_train_features, source_val_features, seed)
    return {"im": information_maximization(target_val_probs),
            "snd": soft_neighborhood_density(target_val_probs, temperature),
            "neg_dev_risk": -dev_risk(weights, source_val_losses)}
