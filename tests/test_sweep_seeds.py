"""Sweeps over seeds: per-configuration mean ± std, 95% CI and n, the choice by mean, test figures for it only.

The job folders are written as ``transferlab.run`` writes them (``experiment.write_metrics``, Hydra's
``.hydra/overrides.yaml`` list, jobs numbered with the last swept key varying fastest); the expected figures
are computed here with numpy and scipy, independently of ``sweep_configs``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from transferlab.analysis.sweep_configs import spread
from transferlab.analysis.sweep_summary import SweepSummary, summarize, summarize_sweep
from transferlab.experiment import write_metrics

FIXED = ["trainer.max_epochs=1", "data.image_size=32"]


def write_job(sweep: Path, num: int, overrides: list[str], val_acc: float | None, test_acc: float | None = None,
              status: str = "completed") -> Path:
    """One job folder as ``transferlab.run`` leaves it; ``val_acc=None`` with ``status="failed"`` is a failed job,
    ``status="missing"`` a job killed before writing metrics.json."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"seed": 0, "monitor": "val/acc"}), job / ".hydra" / "config.yaml")
    payload = {"status": "failed", "monitor": "val/acc", "monitor_mode": "max"}
    if status == "completed":
        test_acc = val_acc - 0.02 if test_acc is None else test_acc
        metrics = {"finetune/frozen_depth": 0.0, "train/acc": val_acc + 0.05, "train/loss": 1.0 - val_acc,
                   "train/loss_epoch": 1.0 - val_acc, "train/loss_step": 1.1 - val_acc, "val/acc": val_acc,
                   "val/acc_best": val_acc, "val/loss": 1.2 - val_acc, "test/acc": test_acc,
                   "test/loss": 1.3 - test_acc}
        best = str(job / "checkpoints" / "best-epoch000.ckpt")
        payload.update(status="completed", metrics=metrics, best_model_path=best, monitor_value=val_acc)
    elif status == "failed":
        payload["error"] = "TransferlabError: CUDA out of memory"
    if status != "missing":
        payload["seconds"] = 2.0 + num
        write_metrics(job, payload)
    return job


def write_sweep(sweep: Path, grid: dict[tuple, list], seeds: int) -> Path:
    """``-m seed=0..seeds-1 <k>=...``: ``grid`` maps a tuple of overrides to one entry per seed: a val/acc, a
    ``(val/acc, test/acc)`` pair, ``"failed"`` or ``"missing"``."""
    num = 0
    for seed in range(seeds):
        for config, outcomes in grid.items():
            outcome = outcomes[seed]
            overrides = [f"seed={seed}", *config, *FIXED]
            if isinstance(outcome, str):
                write_job(sweep, num, overrides, None, status=outcome)
            else:
                val, test = outcome if isinstance(outcome, tuple) else (outcome, None)
                write_job(sweep, num, overrides, val, test)
            num += 1
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def expected(values: list[float]) -> tuple[float, float, float]:
    """``(mean, sample std, 95% CI half-width)`` by numpy and scipy's t interval."""
    data = np.asarray(values)
    low, high = stats.t.interval(0.95, len(data) - 1, loc=data.mean(), scale=stats.sem(data))
    return float(data.mean()), float(data.std(ddof=1)), float((high - low) / 2)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200


LR_GRID = {  # lr=1e-4 has the best single job (0.95) and the best test figures, lr=1e-3 the best mean val/acc
    ("optimizer.lr=1e-2",): [0.70, 0.72, 0.74, 0.71, "failed"],
    ("optimizer.lr=1e-3",): [0.80, 0.81, 0.79, 0.82, 0.80],
    ("optimizer.lr=1e-4",): [(0.60, 0.9), (0.95, 0.99), (0.55, 0.9), (0.58, 0.9), (0.62, 0.9)],
}


@pytest.fixture
def lr_sweep(tmp_path) -> Path:
    return write_sweep(tmp_path / "sweep", LR_GRID, seeds=5)


def test_configurations_get_mean_std_ci_and_n_and_the_best_mean_is_chosen(lr_sweep):
    result = summarize_sweep(lr_sweep, echo=False)
    assert len(result.rows) == 15 and result.rows[0]["optimizer.lr"] == "1e-4"  # per-job order: best single job
    by_config = read_csv(lr_sweep / "summary_by_config.csv")
    assert [r["optimizer.lr"] for r in by_config] == ["1e-3", "1e-2", "1e-4"]  # by mean: 0.804, 0.7175, 0.66
    assert [r["chosen"] for r in by_config] == ["yes", "", ""]
    assert [(r["n"], r["jobs"]) for r in by_config] == [("5", "5"), ("4", "5"), ("5", "5")]
    for row, values in zip(by_config, ([0.80, 0.81, 0.79, 0.82, 0.80], [0.70, 0.72, 0.74, 0.71],
                                       [0.60, 0.95, 0.55, 0.58, 0.62])):
        mean, std, ci = expected(values)
        assert float(row["val/acc mean"]) == pytest.approx(mean)
        assert float(row["val/acc std"]) == pytest.approx(std)
        assert float(row["val/acc ci95"]) == pytest.approx(ci)
        assert float(row["val/loss mean"]) == pytest.approx(1.2 - mean)  # validation figures for every row
        assert row["val/loss n"] == str(len(values))
    chosen_test = expected([0.78, 0.79, 0.77, 0.80, 0.78])
    assert float(by_config[0]["test/acc mean"]) == pytest.approx(chosen_test[0])
    assert float(by_config[0]["test/acc std"]) == pytest.approx(chosen_test[1])
    assert by_config[0]["test/acc n"] == "5"
    for row in by_config[1:]:  # test figures for the chosen configuration only
        assert all(row[c] == "" for c in row if c.startswith("test/")), row
    assert "seed" not in by_config[0]


def test_summary_md_names_the_choice_and_the_rule_and_hides_other_test_figures(lr_sweep, capsys):
    summarize(lr_sweep)
    md = (lr_sweep / "summary.md").read_text()
    assert "3 configurations over seeds, 15 jobs (14 completed)" in md
    assert "the same in every job: `trainer.max_epochs=1`, `data.image_size=32`" in md
    assert "ranked by the mean of `val/acc` (max) over their seeds" in md
    assert "**Chosen: `optimizer.lr=1e-3`**, the best mean `val/acc` (max)" in md
    assert "Test figures are reported for this configuration only" in md
    mean, std, ci = expected([0.80, 0.81, 0.79, 0.82, 0.80])
    assert f"| 1e-3 | 5 | {mean:.4g} ± {std:.2g} | {ci:.2g} | 0.784 ± {std:.2g} (n=5) |" in md
    assert "| 1e-2 | 4 of 5 |" in md  # the failed job is counted and shown
    assert "below the evidence rule" not in md  # n = 5 seeds
    job_table = md[md.index("## Every job"):]
    assert "| 1 | 0 | 1e-3 | 1 | 32 | completed | yes | 0.8 | 0.78 |" in job_table
    assert "| 8 | 2 | 1e-4 | 1 | 32 | completed |  | 0.55 |  |" in job_table  # its test figures are in summary.csv
    jobs = read_csv(lr_sweep / "summary.csv")  # every job, every metric, as without seeds
    assert len(jobs) == 15 and {r["test/acc"] for r in jobs if r["job"] == "8"} == {"0.9"}
    assert [r["chosen"] for r in jobs].count("yes") == 5
    out = capsys.readouterr().out
    assert "| optimizer.lr | n | val/acc mean ± std | 95% CI ± |" in out and "**Chosen: `optimizer.lr=1e-3`**" in out


def test_a_failed_or_missing_job_reduces_n_and_the_mean_is_over_the_rest(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", {("optimizer.lr=1e-2",): [0.5, "failed", 0.7, "missing", 0.6],
                                             ("optimizer.lr=1e-3",): [0.4, 0.45, 0.5, 0.55, 0.35]}, seeds=5)
    summarize(sweep, echo=False)
    rows = read_csv(sweep / "summary_by_config.csv")
    assert [(r["optimizer.lr"], r["n"], r["jobs"]) for r in rows] == [("1e-2", "3", "5"), ("1e-3", "5", "5")]
    mean, std, ci = expected([0.5, 0.7, 0.6])
    assert float(rows[0]["val/acc mean"]) == pytest.approx(mean) and float(rows[0]["val/acc ci95"]) == pytest.approx(ci)
    assert float(rows[0]["test/acc mean"]) == pytest.approx(mean - 0.02) and rows[0]["test/acc n"] == "3"
    md = (sweep / "summary.md").read_text()
    assert "| 1e-2 | 3 of 5 |" in md and "n = 3 of 5 jobs" in md and "below the evidence rule (≥ 5 seeds" in md
    statuses = {r["job"]: r["status"] for r in read_csv(sweep / "summary.csv")}
    assert (statuses["2"], statuses["6"]) == ("failed", "missing")
    assert_png(sweep / "bar.png")


def test_mode_min_two_keys_heatmap_and_a_single_seed_has_no_spread(tmp_path):
    grid = {(f"strategy.freeze_depth={d}", f"optimizer.lr={lr}"): [acc + 0.01 * s for s in range(3)]
            for d, lr, acc in [(0, "1e-2", 0.6), (0, "1e-3", 0.7), (2, "1e-2", 0.5), (2, "1e-3", 0.8)]}
    grid[("strategy.freeze_depth=2", "optimizer.lr=1e-3")][1:] = ["failed", "failed"]  # n = 1
    sweep = write_sweep(tmp_path / "sweep", grid, seeds=3)
    result = summarize_sweep(sweep, metric="val/loss", mode="min", echo=False)
    best = result.configs[0]  # lowest mean val/loss = highest val/acc: depth 2, lr 1e-3 with its one seed
    assert (best["strategy.freeze_depth"], best["optimizer.lr"], best["n"]) == ("2", "1e-3", 1)
    rows = read_csv(sweep / "summary_by_config.csv")
    assert rows[0]["chosen"] == "yes" and rows[0]["val/loss std"] == "" and rows[0]["val/loss ci95"] == ""
    assert float(rows[0]["val/loss mean"]) == pytest.approx(1.2 - 0.8)
    mean, std, ci = expected([1.2 - 0.7 - 0.01 * s for s in range(3)])
    assert (rows[1]["strategy.freeze_depth"], rows[1]["optimizer.lr"]) == ("0", "1e-3")
    assert float(rows[1]["val/loss std"]) == pytest.approx(std) and float(rows[1]["val/loss ci95"]) == pytest.approx(ci)
    assert rows[1]["test/acc mean"] == ""
    md = (sweep / "summary.md").read_text()
    assert "not the runs' monitor" in md and "95% CI ± n/a, n = 1 of 3 jobs" in md
    assert_png(sweep / "heatmap.png")
    assert not (sweep / "bar.png").exists()


def test_only_seeds_swept_is_one_configuration_with_a_bar(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = write_sweep(tmp_path / "sweep", {(): [0.6, 0.62, 0.64, 0.66, 0.68]}, seeds=5)
    result = summarize_sweep(sweep, echo=False)
    assert len(result.configs) == 1 and result.configs[0]["n"] == 5
    mean, std, ci = expected([0.6, 0.62, 0.64, 0.66, 0.68])
    assert result.configs[0]["val/acc ci95"] == pytest.approx(ci)
    md = (sweep / "summary.md").read_text()
    assert "**Chosen: `(the only configuration)`**" in md and "| configuration | n |" in md
    assert_png(sweep / "bar.png")
    events = EventAccumulator(str(sweep / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] == ["sweep/bar"]


def test_repeated_overrides_without_a_seed_key_are_grouped(tmp_path):
    sweep = tmp_path / "sweep"
    for num, (lr, acc) in enumerate([("1e-3", 0.5), ("1e-2", 0.5), ("1e-3", 0.6), ("1e-2", 0.7)]):
        write_job(sweep, num, [f"optimizer.lr={lr}"], acc)
    rows = summarize_sweep(sweep, echo=False).configs
    assert [(c["optimizer.lr"], c["n"], c["chosen"]) for c in rows] == [("1e-2", 2, "yes"), ("1e-3", 2, "")]
    assert rows[0]["val/acc mean"] == pytest.approx(0.6)


def test_plain_sweep_has_no_configuration_table(tmp_path):
    sweep = tmp_path / "sweep"
    for num, lr in enumerate(("1e-2", "1e-3")):
        write_job(sweep, num, ["seed=3", f"optimizer.lr={lr}"], 0.5 + 0.1 * num)  # one fixed seed: not grouped
    result = summarize_sweep(sweep, echo=False)
    assert result.configs == [] and "chosen" not in result.rows[0]
    assert not (sweep / "summary_by_config.csv").exists()
    assert "chosen" not in read_csv(sweep / "summary.csv")[0]
    assert_png(sweep / "bar.png")


def test_callback_logs_the_chosen_configuration(lr_sweep, caplog):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(lr_sweep), "subdir": "0"}}})
    with caplog.at_level(logging.INFO):
        SweepSummary().on_multirun_end(config=config, config_name="config")
    assert "3 configurations over seeds; chosen by the best mean val/acc: optimizer.lr=1e-3" in caplog.text
    assert "n = 5 of 5" in caplog.text and "test/acc = 0.784 ±" in caplog.text


def test_spread_matches_scipy():
    values = [0.1, 0.4, 0.35, 0.2]
    mean, std, ci = expected(values)
    assert spread(values) == pytest.approx({"mean": mean, "std": std, "ci95": ci, "n": 4})
    assert spread([0.3]) == {"mean": 0.3, "std": None, "ci95": None, "n": 1}
    assert spread([])["n"] == 0
