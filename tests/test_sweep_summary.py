"""Sweep summaries from fake multirun folders: tables, sort order, plots, callback and CLI."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from transferlab.analysis.sweep_summary import SweepSummary, main, summarize


def make_job(sweep: Path, num: int, overrides: list[str], metrics: dict | None, status: str = "completed",
             error: str | None = None) -> Path:
    """One Hydra job folder: ``.hydra/overrides.yaml`` and (unless ``metrics`` is None and ok) ``metrics.json``."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"trainer": {"max_epochs": 1}}), job / ".hydra" / "config.yaml")
    if metrics is not None or status == "failed":
        payload = {"status": status, "monitor": "val/acc", "seconds": 1.5 + num}
        if status == "completed":
            payload.update(metrics=metrics, monitor_value=metrics["val/acc"], best_model_path=f"{job}/best.ckpt")
        if error:
            payload["error"] = error
        (job / "metrics.json").write_text(json.dumps(payload))
    return job


def scores(acc: float) -> dict:
    return {"train/loss": 1 - acc, "val/acc": acc, "val/acc_best": acc, "test/acc": acc - 0.01, "test/loss": 1 - acc}


@pytest.fixture
def grid_sweep(tmp_path) -> Path:
    """A 2x2 sweep of ``strategy.freeze_depth`` x ``optimizer.lr`` plus Hydra's ``multirun.yaml``."""
    sweep = tmp_path / "sweeps" / "2024-01-01_00-00-00"
    accs = {(0, "1e-2"): 0.7, (0, "1e-3"): 0.9, (2, "1e-2"): 0.6, (2, "1e-3"): 0.8}
    for num, ((depth, lr), acc) in enumerate(accs.items()):
        make_job(sweep, num, [f"strategy.freeze_depth={depth}", f"optimizer.lr={lr}", "trainer=cpu"], scores(acc))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0


def test_grid_sweep_writes_sorted_tables_and_heatmap(grid_sweep, capsys):
    rows = summarize(grid_sweep, metric="test/acc", mode="max")
    assert [r["job"] for r in rows] == ["1", "3", "0", "2"]
    assert rows[0]["strategy.freeze_depth"] == "0" and rows[0]["optimizer.lr"] == "1e-3"
    assert rows[0]["test/acc"] == pytest.approx(0.89) and rows[0]["seconds"] == pytest.approx(2.5)

    table = read_csv(grid_sweep / "summary.csv")
    assert [r["job"] for r in table] == ["1", "3", "0", "2"]
    assert list(table[0]) == ["job", "strategy.freeze_depth", "optimizer.lr", "trainer", "status",
                              "test/acc", "test/loss", "train/loss", "val/acc", "val/acc_best", "seconds"]
    assert float(table[-1]["test/acc"]) == pytest.approx(0.59)

    md = (grid_sweep / "summary.md").read_text()
    assert "| job | strategy.freeze_depth | optimizer.lr | trainer | status |" in md
    assert "| 1 | 0 | 1e-3 | cpu | completed | 0.89 |" in md
    assert md.index("| 1 | 0 |") < md.index("| 2 | 2 |")
    assert "| job | strategy.freeze_depth" in capsys.readouterr().out

    assert_png(grid_sweep / "heatmap.png")
    assert not (grid_sweep / "bar.png").exists()
    assert (grid_sweep / "multirun.yaml").read_text() == "hydra: {}\n"  # never touched


def test_one_parameter_sweep_writes_bar_chart(tmp_path):
    for num, depth in enumerate([0, 2, 4]):
        make_job(tmp_path, num, [f"strategy.freeze_depth={depth}"], scores(0.5 + 0.1 * num))
    rows = summarize(tmp_path)
    assert [r["strategy.freeze_depth"] for r in rows] == ["4", "2", "0"]
    assert_png(tmp_path / "bar.png")
    assert not (tmp_path / "heatmap.png").exists()


def test_failed_and_missing_jobs_are_listed_last(grid_sweep):
    make_job(grid_sweep, 4, ["strategy.freeze_depth=4", "optimizer.lr=1e-2", "trainer=cpu"], None,
             status="failed", error="TransferlabError: out of memory | try a smaller batch")
    make_job(grid_sweep, 5, ["strategy.freeze_depth=4", "optimizer.lr=1e-3", "trainer=cpu"], None,
             status="missing")  # crashed hard: no metrics.json at all
    rows = summarize(grid_sweep)
    assert [(r["job"], r["status"]) for r in rows[-2:]] == [("4", "failed"), ("5", "missing")]
    assert "test/acc" not in rows[-1] and rows[-2]["error"].startswith("TransferlabError")
    table = read_csv(grid_sweep / "summary.csv")
    assert [r["status"] for r in table] == ["completed"] * 4 + ["failed", "missing"]
    assert table[-1]["test/acc"] == "" and table[-2]["error"].endswith("smaller batch")
    md = (grid_sweep / "summary.md").read_text()
    assert "out of memory \\| try" in md  # a pipe in an error cannot break the table
    assert_png(grid_sweep / "heatmap.png")  # the 2x3 grid has n/a cells


def test_mode_min_sorts_ascending(grid_sweep):
    rows = summarize(grid_sweep, metric="test/loss", mode="min")
    assert [r["job"] for r in rows] == ["1", "3", "0", "2"]
    rows = summarize(grid_sweep, metric="val/acc", mode="min")
    assert [r["job"] for r in rows] == ["2", "0", "3", "1"]
    assert [r["job"] for r in read_csv(grid_sweep / "summary.csv")] == ["2", "0", "3", "1"]
    with pytest.raises(ValueError):
        summarize(grid_sweep, mode="best")


def test_callback_summarises_sweep_dir(grid_sweep, capsys, caplog):
    config = OmegaConf.create({"monitor": "val/acc", "hydra": {"sweep": {"dir": str(grid_sweep), "subdir": "0"}}})
    with caplog.at_level(logging.INFO):
        SweepSummary(metric="val/acc", mode="max").on_multirun_end(config=config, config_name="config")
    assert (grid_sweep / "summary.csv").is_file() and (grid_sweep / "heatmap.png").is_file()
    assert "| 1 | 0 | 1e-3 |" in capsys.readouterr().out
    assert "job 1" in caplog.text


def test_callback_never_raises(tmp_path, caplog):
    callback = SweepSummary()
    with caplog.at_level(logging.WARNING):
        callback.on_multirun_end(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "gone")}}}))
        callback.on_multirun_end(config=OmegaConf.create({}))  # no hydra.sweep.dir at all
    assert caplog.text.count("Sweep summary failed") == 2
    assert not (tmp_path / "gone").exists()


def test_cli(grid_sweep, tmp_path, capsys):
    assert main([str(grid_sweep), "--metric", "test/loss", "--mode", "min"]) == 0
    assert "| 1 | 0 | 1e-3 |" in capsys.readouterr().out
    assert main([str(tmp_path / "nope")]) == 2
    out = subprocess.run([sys.executable, "-m", "transferlab.analysis.sweep_summary", "--help"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    assert "--metric" in out and "--mode" in out


def test_three_parameters_get_parallel_coordinates_in_png_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "sweep"
    grid = [(d, lr, wd) for d in (0, 2) for lr in ("1e-2", "1e-3") for wd in ("0", "1e-4")]
    for num, (depth, lr, wd) in enumerate(grid):
        make_job(sweep, num, [f"strategy.freeze_depth={depth}", f"optimizer.lr={lr}",
                              f"optimizer.weight_decay={wd}"], scores(0.5 + 0.05 * num))
    make_job(sweep, len(grid), ["strategy.freeze_depth=4", "optimizer.lr=1e-2", "optimizer.weight_decay=0"],
             None, status="failed", error="boom")
    rows = summarize(sweep, echo=False)
    assert rows[0]["job"] == "7" and rows[-1]["status"] == "failed"
    assert_png(sweep / "parallel.png")
    assert not (sweep / "heatmap.png").exists() and not (sweep / "bar.png").exists()
    events = EventAccumulator(str(sweep / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] == ["sweep/parallel"]


def test_markdown_shows_headline_metrics_and_csv_keeps_all(tmp_path):
    sweep = tmp_path / "sweep"
    for num, lr in enumerate(("1e-2", "1e-3")):
        make_job(sweep, num, [f"optimizer.lr={lr}"], {**scores(0.6 + 0.1 * num), "lr/head": 0.01,
                                                      "train/loss_step": 0.3})
    summarize(sweep, echo=False)
    md = (sweep / "summary.md").read_text()
    header = "| job | optimizer.lr | status | val/acc | test/acc | test/loss | train/loss | val/acc_best | seconds |"
    assert header in md
    assert "lr/head" not in md and "train/loss_step" not in md
    assert {"lr/head", "train/loss_step"} <= set(read_csv(sweep / "summary.csv")[0])


def test_jobs_are_ranked_by_the_monitor_never_by_test_metrics(tmp_path):
    """Job 0 is better on val/acc (the runs' monitor), job 1 on test/acc: the summary picks job 0 and says so."""
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["optimizer.lr=1e-2"], {**scores(0.6), "val/acc": 0.9})
    make_job(sweep, 1, ["optimizer.lr=1e-3"], {**scores(0.8), "val/acc": 0.5})
    rows = summarize(sweep, echo=False)
    assert [r["job"] for r in rows] == ["0", "1"]
    md = (sweep / "summary.md").read_text()
    assert "Ranked by `val/acc` (max): the runs' monitored validation metric" in md
    summarize(sweep, metric="test/acc", echo=False)
    assert "ranking on a test metric selects on the test set" in (sweep / "summary.md").read_text()
