"""The command line as users type it: run folder layout, sweeps and their summary, seeding, bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import run_cli
from fakes import make_image_tree
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from transferlab.experiment import train

QUICK = ["debug=limit", "data.image_size=32", "data.batch_size=16", "callbacks.rich_progress_bar=null"]


def only_run_dir(cwd, kind="runs"):
    runs = sorted((cwd / "outputs" / kind).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_cli_run_writes_config_metrics_tensorboard_checkpoints_figures(tmp_path):
    result = run_cli(*QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run_dir(tmp_path)
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["monitor"] == "val/acc"
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc"):
        assert 0 <= metrics["metrics"][key] < 100, key
    assert (run / "checkpoints" / "last.ckpt").is_file() and metrics["best_model_path"].startswith(str(run))
    assert {p.name for p in (run / "figures").iterdir()} >= {"confusion_matrix.png", "predictions.png"}
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_epoch", "train/acc", "val/acc", "val/acc_best", "test/acc"} <= scalars
    assert any(tag.startswith("lr") for tag in scalars) and "hp/test_acc" in scalars
    assert {"test/confusion_matrix", "test/predictions"} <= set(events.Tags()["images"])


def test_multirun_2x2_writes_a_summary(tmp_path):
    result = run_cli("-m", "strategy.freeze_depth=0,4", "optimizer.lr=1e-2,1e-3", *QUICK,
                     "trainer.limit_train_batches=1", "trainer.max_epochs=1", "callbacks.evaluation_figures=null",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_run_dir(tmp_path, "sweeps")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3", "tensorboard"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and {r["strategy.freeze_depth"] for r in rows} == {"0", "4"}
    accs = [float(r["val/acc"]) for r in rows]  # ranked by the runs' monitor, never by a test metric
    assert accs == sorted(accs, reverse=True)
    assert (sweep / "summary.md").is_file() and (sweep / "heatmap.png").stat().st_size > 0
    assert "strategy.freeze_depth" in result.stdout  # the table is printed


def test_same_seed_gives_identical_metrics_and_seed_zero_is_a_seed(make_cfg):
    first, second, other = (make_cfg("seed=0", "test=false", run="a"), make_cfg("seed=0", "test=false", run="b"),
                            make_cfg("seed=1", "test=false", run="c"))
    results = [train(cfg) for cfg in (first, second, other)]
    metrics = [json.loads((__import__("pathlib").Path(c.paths.output_dir) / "metrics.json").read_text())["metrics"]
               for c in (first, second, other)]
    assert metrics[0] == metrics[1] and results[0] == results[1]
    assert metrics[0]["train/loss"] != metrics[2]["train/loss"]


def test_resume_pointing_at_nothing_is_an_error(make_cfg, tmp_path):
    from transferlab.contracts.errors import TransferlabError

    with pytest.raises(TransferlabError, match="no such checkpoint"):
        train(make_cfg(f"resume={tmp_path / 'nope.ckpt'}"))
    truncated = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(TransferlabError, match="unreadable checkpoint"):
        train(make_cfg(f"resume={truncated}", run="second"))  # a fresh folder: the first holds a failed run


@pytest.fixture
def empty_class_tree(tmp_path):
    root = tmp_path / "images"
    make_image_tree(root, classes=("a", "b"), per_class=6, size=16)
    (root / "c").mkdir()
    return root


@pytest.mark.parametrize("args,expected", [
    (["model=resnet5"], "Could not find 'model/resnet5'"),
    (["strategy=dan"], "Could not find 'strategy/dan'"),
    (["optimizer.lrr=0.1"], "Could not override 'optimizer.lrr'"),
    (["data=imagefolder", "data.root=/no/such/folder"], "data.root=/no/such/folder does not exist"),
    (["data=imagefolder"], "Missing mandatory value: data.root"),
    (["data=imagefolder", "data.root={empty}"], "has no images"),
    (["strategy.freeze_depth=12"], "strategy.freeze_depth=12 is out of range: efficientnet_lite0 has 8 stages"),
    (["model.weights=/no/weights.pth"], "weights file not found: /no/weights.pth"),
    (["optimizer.lr=abc"], "optimizer.lr='abc' is not a number"),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
])
def test_bad_input_gives_one_clear_line_and_nonzero_exit(tmp_path, empty_class_tree, args, expected):
    args = [a.format(empty=empty_class_tree) for a in args]
    result = run_cli(*args, "debug=fdr", cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 30


def test_multirun_with_a_failing_job_finishes_the_others_and_marks_it(tmp_path):
    result = run_cli("-m", "strategy.freeze_depth=0,99", *QUICK, "trainer.limit_train_batches=1",
                     "trainer.max_epochs=1", "callbacks.evaluation_figures=null", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy.freeze_depth=99 is out of range" in result.stderr
    sweep = only_run_dir(tmp_path, "sweeps")
    statuses = {d.name: json.loads((sweep / d.name / "metrics.json").read_text())["status"] for d in sweep.iterdir()
                if d.name.isdigit()}
    assert statuses == {"0": "completed", "1": "failed"}
    rows = {r["strategy.freeze_depth"]: r for r in csv.DictReader((sweep / "summary.csv").open())}
    assert set(rows) == {"0", "99"} and float(rows["0"]["test/acc"]) >= 0
    assert rows["99"]["status"] == "failed"


@pytest.mark.parametrize("logger", ["csv", "many", "none"])
def test_every_logger_config_completes_and_records_hparams(make_cfg, tmp_path, logger):
    train(make_cfg(f"logger={logger}", "callbacks.evaluation_figures=null"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "error" not in metrics
    if logger != "none":
        hparams = (tmp_path / "run" / "csv" / "hparams.yaml").read_text()
        assert "model.name: efficientnet_lite0" in hparams and "seed: 0" in hparams  # the run's own config
        rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
        assert any(row.get("hp/test_acc") for row in rows)
