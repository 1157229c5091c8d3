"""LogME and LEEP on known cases, and the rank CLI on digits."""

from __future__ import annotations

import csv

import numpy as np

from transferlab.metrics.transferability import leep, logme
from transferlab.rank import main


def test_leep_is_zero_for_perfectly_predictive_source_labels_and_lower_otherwise():
    labels = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.eye(4)[[3, 3, 0, 0, 1, 1]]  # source class -> one target class
    assert leep(perfect, labels) == 0.0
    assert leep(np.full((6, 4), 0.25), labels) < -1.0  # uninformative: log(1/3)


def test_logme_prefers_separable_features_to_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    separable = np.eye(3)[labels] * 5 + rng.normal(0, 0.3, (120, 3))
    noise = rng.normal(0, 1, (120, 3))
    assert logme(separable, labels) > logme(noise, labels)


def test_rank_puts_pretrained_lite0_above_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["models=[efficientnet_lite0:none,efficientnet_lite0]", "data.image_size=64",
                 "data.samples_per_class=60"]) == 0
    rows = list(csv.DictReader((tmp_path / "rank.csv").read_text().splitlines()))
    assert [r["model"] for r in rows] == ["efficientnet_lite0", "efficientnet_lite0:none"]
    assert float(rows[0]["leep"]) < 0 and rows[1]["leep"] == "nan"
    assert "n/a" in capsys.readouterr().out
