"""``python -m transferlab.eval``: a checkpoint tested on its own data, on other data configs and on a new folder."""

from __future__ import annotations

import io
import json
import logging
import sys

import numpy as np
import pytest
from conftest import FAST, run_in_process, snapshot
from PIL import Image
from sklearn.datasets import load_digits

from transferlab.eval import cli, merged_overrides
from transferlab.run import main

QUICK = [*FAST, "logger=none"]


def trained(tmp_path, monkeypatch, *overrides: str):
    run = tmp_path / "run"
    code, err = run_in_process(main, *QUICK, *overrides, f"hydra.run.dir={run}", monkeypatch=monkeypatch)
    assert code == 0, err
    for handler in logging.getLogger().handlers[:]:  # Hydra's in-process run.log handler: a process of its own ends it
        logging.getLogger().removeHandler(handler)
        handler.close()
    return run, json.loads((run / "metrics.json").read_text()), next((run / "checkpoints").glob("best-*.ckpt"))


def evaluate(monkeypatch, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m transferlab.eval *args``, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.argv", ["transferlab.eval", *args])
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = cli()
    monkeypatch.setattr("sys.stdout", sys.__stdout__)
    monkeypatch.setattr("sys.stderr", sys.__stderr__)
    return code, out.getvalue(), err.getvalue()


def test_eval_reproduces_the_runs_test_metrics_and_writes_its_own_folder(tmp_path, monkeypatch):
    run, metrics, ckpt = trained(tmp_path, monkeypatch)
    before = snapshot(run, skip="eval")
    code, out, err = evaluate(monkeypatch, f"ckpt={ckpt}", f"output_dir={tmp_path / 'ev'}")
    assert code == 0, err
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["checkpoint"] == str(ckpt)
    assert result["test"] == pytest.approx(metrics["test"], abs=1e-6)  # same split, same weights
    assert result["data"]["_target_"].endswith("DigitsDataModule")
    assert {p.name for p in (tmp_path / "ev" / "figures").iterdir()} >= {"confusion_matrix.png", "predictions.png"}
    assert (tmp_path / "ev" / "config.yaml").is_file()
    assert f"test/acc    {metrics['test']['test/acc']:.4f}" in out
    assert snapshot(run, skip="eval") == before  # the run folder is read, never written

    # Again into the same folder: refused, nothing overwritten.
    code, _, err = evaluate(monkeypatch, f"ckpt={ckpt}", f"output_dir={tmp_path / 'ev'}")
    assert code == 2 and "already holds a run" in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_dann_checkpoint_on_its_pair_reports_both_domains_pad_and_embedding(tmp_path, monkeypatch):
    run, metrics, ckpt = trained(tmp_path, monkeypatch, "strategy=dann", "data.validator_samples=32",
                                 "callbacks.domain_report.max_samples=32")
    code, _, err = evaluate(monkeypatch, f"ckpt={ckpt}", "data.validator_samples=16")
    assert code == 0, err
    [folder] = (run / "eval").iterdir()  # the default: <run>/eval/<date_time>
    result = json.loads((folder / "metrics.json").read_text())
    assert set(result["test"]) >= {"test/source_acc", "test/target_acc", "domain/pad"}
    assert result["test"]["test/target_acc"] == pytest.approx(metrics["test"]["test/target_acc"], abs=1e-6)
    assert 0.0 <= result["test"]["domain/pad"] <= 2.0
    assert (folder / "figures" / "embedding.png").stat().st_size > 10_000


def digit_folder(root, classes: list[str], per_class: int = 6):
    """Real scikit-learn digits as PNG files in ``root/<class>/``."""
    digits = load_digits()
    for name in classes:
        (root / name).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == int(name)][:per_class]):
            Image.fromarray((image * 255 / 16).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_eval_on_a_new_folder_maps_its_class_folders_by_name(tmp_path, monkeypatch):
    _, _, ckpt = trained(tmp_path, monkeypatch)
    folder = digit_folder(tmp_path / "new_site", ["3", "7"])  # a subset of the classes, in another order of indices
    code, _, err = evaluate(monkeypatch, f"ckpt={ckpt}", f"folder={folder}", f"output_dir={tmp_path / 'ev'}")
    assert code == 0, err
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0.0 <= result["test"]["test/acc"] <= 1.0 and result["data"] == {"folder": str(folder)}
    rows = (tmp_path / "ev" / "figures" / "confusion_matrix.csv").read_text().splitlines()
    counts = {row.split(",")[0]: sum(map(int, row.split(",")[1:])) for row in rows[1:]}
    assert counts["3"] == counts["7"] == 6 and sum(counts.values()) == 12  # true labels are the model's indices

    unknown = digit_folder(tmp_path / "other", ["3", "cat"][:1])
    (unknown / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(unknown / "cat" / "a.png")
    code, _, err = evaluate(monkeypatch, f"ckpt={ckpt}", f"folder={unknown}")
    assert code == 2 and "class folder(s) cat are not among the model's classes" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_usage_help_and_bad_input(monkeypatch, tmp_path):
    code, out, _ = evaluate(monkeypatch, "--help")
    assert code == 0 and out.startswith("usage: python -m transferlab.eval ckpt=PATH")
    code, _, err = evaluate(monkeypatch, "folder=x")
    assert code == 2 and "usage:" in err
    code, _, err = evaluate(monkeypatch, f"ckpt={tmp_path / 'none.ckpt'}")
    assert code == 2 and "no such checkpoint" in err


def test_given_overrides_replace_the_runs_keys_and_groups():
    saved = ["strategy=dann", "data.batch_size=8", "trainer.max_epochs=3", "seed=4", "hydra.run.dir=x"]
    assert merged_overrides(saved, ["data=fonts_to_digits"]) == ["strategy=dann", "trainer.max_epochs=3", "seed=4",
                                                                 "data=fonts_to_digits"]
    assert merged_overrides(saved, ["trainer.max_epochs=1"]) == ["strategy=dann", "data.batch_size=8", "seed=4",
                                                                  "trainer.max_epochs=1"]
