"""predict: a trained run classifies a folder of images into a CSV."""

from __future__ import annotations

import csv

import pytest
from fakes import make_image_tree
from omegaconf import OmegaConf

from transferlab.contracts.errors import TransferlabError
from transferlab.experiment import check_targets, train
from transferlab.predict import main


def test_predict_on_a_folder_writes_topk_csv(make_cfg, tmp_path, capsys, monkeypatch):
    cfg = make_cfg("test=false", "logger=none")
    train(cfg)
    (tmp_path / "run" / ".hydra").mkdir()  # as `python -m transferlab.run` leaves it
    OmegaConf.save(OmegaConf.masked_copy(cfg, ["model", "strategy", "data"]),
                   tmp_path / "run" / ".hydra" / "config.yaml")
    images = make_image_tree(tmp_path / "images", classes=("x", "y"), per_class=3, size=20, modes=("RGB", "L"))
    out = tmp_path / "pred.csv"
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main([f"ckpt={ckpt}", f"input={images}", f"output={out}", "topk=3"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and list(rows[0]) == ["path", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    for row in rows:
        probs = [float(row[f"prob_{i}"]) for i in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        assert {row[f"class_{i}"] for i in (1, 2, 3)} <= {str(d) for d in range(10)}
    before = out.read_text()
    assert main([f"ckpt={ckpt}", f"input={images}", f"output={out}"]) == 2  # never overwritten
    assert out.read_text() == before and "exists" in capsys.readouterr().err
    bad = images / "x" / "broken.png"
    bad.write_bytes(b"not an image")
    assert main([f"ckpt={ckpt}", f"input={images}", f"output={tmp_path / 'strict.csv'}"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "pass on_corrupt=skip" in err and not (tmp_path / "strict.csv").exists()
    skipping = tmp_path / "skip.csv"
    assert main([f"ckpt={ckpt}", f"input={images}", f"output={skipping}", "on_corrupt=skip"]) == 0
    assert len(list(csv.DictReader(skipping.open()))) == 6  # the advice works: the other images are predicted
    assert (tmp_path / "skip.csv.skipped.txt").read_text() == f"{bad}\n"
    bad.unlink()
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # no output=: outputs/predictions.csv, its folder created, never overwritten
    assert main([f"ckpt={ckpt}", f"input={images}"]) == 0
    default = tmp_path / "outputs" / "predictions.csv"
    assert capsys.readouterr().out == "wrote outputs/predictions.csv\n" and len(default.read_text().splitlines()) == 7
    before = default.read_text()
    assert main([f"ckpt={ckpt}", f"input={images}"]) == 2
    assert default.read_text() == before
    assert capsys.readouterr().err.splitlines() == [
        "transferlab: error: output=outputs/predictions.csv exists; choose another file with output=... (nothing is "
        "overwritten)"]


def test_config_targets_outside_transferlab_are_refused():
    with pytest.raises(TransferlabError, match="refusing _target_=os.system"):
        check_targets(OmegaConf.create({"model": {"_target_": "os.system", "command": "touch x"}}), "cfg.yaml")
    check_targets(OmegaConf.create({"_target_": "transferlab.strategies.Finetune"}), "cfg.yaml")
