"""LogME and LEEP on known cases, and the rank CLI on digits."""

from __future__ import annotations

import csv

import numpy as np
import torch

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
    rows = list(csv.DictReader((tmp_path / "outputs" / "rank" / "rank.csv").read_text().splitlines()))
    assert [r["model"] for r in rows] == ["efficientnet_lite0", "efficientnet_lite0:none"]
    assert float(rows[0]["leep"]) < 0 and rows[1]["leep"] == "nan" and rows[0]["note"] == rows[1]["note"] == ""
    assert "n/a" in capsys.readouterr().out
    runs = tmp_path / "outputs" / "rank" / "rank_runs"
    assert {p.name for p in runs.iterdir()} == {"efficientnet_lite0", "efficientnet_lite0_none"}
    assert {p.name for p in tmp_path.iterdir()} == {"outputs"}  # nothing in the working folder itself


def test_rank_skips_a_model_without_weights_and_ranks_the_rest(tmp_path, monkeypatch, capsys, offline_torch_home):
    monkeypatch.chdir(tmp_path)
    small = ["data.image_size=32", "data.samples_per_class=20"]
    assert main(["models=[resnet18,efficientnet_lite0]", *small]) == 0
    out, err = capsys.readouterr()
    [warning] = err.splitlines()
    assert warning.startswith("transferlab: warning: skipped resnet18: ImageNet weights for resnet18 are not in "
                              f"{offline_torch_home}")
    csv_path = tmp_path / "outputs" / "rank" / "rank.csv"
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [r["model"] for r in rows] == ["efficientnet_lite0", "resnet18"]  # the skipped one last, unscored
    assert np.isfinite(float(rows[0]["logme"])) and rows[0]["note"] == ""
    assert rows[1]["logme"] == rows[1]["leep"] == "" and rows[1]["note"].startswith("skipped: ImageNet weights")
    assert "skipped" in out and f"wrote {csv_path.relative_to(tmp_path)}" in out
    before = csv_path.read_text()
    assert main(["models=[efficientnet_lite0]", *small]) == 2  # an existing CSV is never overwritten
    assert csv_path.read_text() == before and "choose another file with output=" in capsys.readouterr().err
    alone = tmp_path / "alone.csv"
    assert main(["models=[resnet18]", *small, f"output={alone}"]) == 2  # nothing left to rank: an error, no CSV
    assert capsys.readouterr().err.splitlines()[-1].startswith("transferlab: error: no model could be scored")
    assert not alone.exists()


def test_random_weights_are_the_seeds_whatever_ran_before(tmp_path, monkeypatch):
    """``model.weights=none`` draws its weights from ``seed``, so a score does not depend on the process's history
    (before, the random entry scored by whatever had drawn from torch's generator first, e.g. earlier tests)."""
    scores = []
    for before in (1, 2):
        torch.manual_seed(before)
        (tmp_path / str(before)).mkdir()
        monkeypatch.chdir(tmp_path / str(before))
        assert main(["models=[efficientnet_lite0:none]", "data.image_size=32", "data.samples_per_class=10"]) == 0
        (row,) = csv.DictReader((tmp_path / str(before) / "outputs" / "rank" / "rank.csv").read_text().splitlines())
        scores.append(row["logme"])
    assert scores[0] == scores[1]
