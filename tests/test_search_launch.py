"""Hydra plugins from the `search` and `launch` extras: the Optuna preset and the launcher presets, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from hydra.utils import instantiate

# The tiny job of every sweep here: a few CPU steps at 32 px, no logger, no figures.
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "data.image_size=32", "data.batch_size=8", "logger=none",
        "callbacks.rich_progress_bar=null", "callbacks.evaluation_figures=null", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false"]
ENV = {"OMP_NUM_THREADS": "1"}  # one thread per job: sweeps run their jobs side by side


def plugin(name: str):
    return pytest.importorskip(f"hydra_plugins.{name}", reason='pip install -e ".[search,launch]"')


def jobs(sweep: Path) -> dict[int, dict]:
    """Job number -> its metrics.json, with its command-line overrides under ``overrides``."""
    found = {}
    for folder in sweep.iterdir():
        if folder.name.isdigit():
            metrics = json.loads((folder / "metrics.json").read_text())
            overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
            metrics["overrides"] = dict(o.split("=", 1) for o in overrides)
            found[int(folder.name)] = metrics
    return found


def summary_jobs(sweep: Path) -> list[str]:
    return [row["job"] for row in csv.DictReader((sweep / "summary.csv").open())]


# --- Optuna ----------------------------------------------------------------------------------------------------------
def test_optuna_preset_searches_valid_values_and_maximises_the_validation_monitor(make_cfg):
    impl = plugin("hydra_optuna_sweeper._impl")
    cfg = make_cfg("hparams_search=digits_optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.monitor == "val/acc" and not cfg.monitor.startswith("test/")
    assert sweeper.direction == "maximize" and make_cfg("hparams_search=digits_optuna", "monitor_mode=min",
                                                        run="min").hydra.sweeper.direction == "minimize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and isinstance(sweeper.sampler.seed, int)
    assert sweeper.n_jobs == 1 and sweeper.n_trials >= 1
    space, fixed = impl.create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed and set(space) == {"optimizer.lr", "strategy.freeze_depth", "strategy.backbone_lr_mult"}
    lr, depth, mult = space["optimizer.lr"], space["strategy.freeze_depth"], space["strategy.backbone_lr_mult"]
    assert type(lr).__name__ == "LogUniformDistribution" and (lr.low, lr.high) == (1e-4, 1e-1)
    stages = instantiate(cfg.model).num_stages  # Optuna's int bounds are inclusive: every depth 0..stages is valid
    assert type(depth).__name__ == "IntUniformDistribution" and (depth.low, depth.high, depth.step) == (0, stages, 1)
    assert 0 < mult.low < mult.high <= 1.0


def test_optuna_search_names_the_trial_with_the_best_validation_value(tmp_path):
    plugin("hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=4", *TINY,
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    found = jobs(sweep)
    assert sorted(found) == [0, 1, 2, 3] and all(j["status"] == "completed" for j in found.values())
    for job in found.values():  # every trial inside the search space
        params = job["overrides"]
        assert 1e-4 <= float(params["optimizer.lr"]) <= 1e-1
        assert params["strategy.freeze_depth"] in {str(d) for d in range(9)}
        assert 0.01 <= float(params["strategy.backbone_lr_mult"]) <= 1.0
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_value = max(j["monitor_value"] for j in found.values())
    assert results["best_value"] == pytest.approx(best_value)
    named = [n for n, j in found.items()
             if all(float(j["overrides"][k]) == pytest.approx(float(v)) for k, v in results["best_params"].items())]
    assert len(named) == 1 and found[named[0]]["monitor_value"] == pytest.approx(best_value)
    assert found[named[0]]["best"]["monitor"] == "val/acc"
    assert found[int(summary_jobs(sweep)[0])]["monitor_value"] == pytest.approx(best_value)  # the summary agrees


def test_optuna_failed_trial_is_recorded_as_failed_and_the_search_goes_on(tmp_path):
    plugin("hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    # TPE seed 1234 asks freeze_depth 8 (valid), then 9 (out of range: the job fails)
    result = run_cli("-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
                     "strategy.freeze_depth=choice(8,9)", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=ENV)
    found = jobs(sweep)
    assert {n: j["overrides"]["strategy.freeze_depth"] for n, j in found.items()} == {0: "8", 1: "9"}
    assert found[1]["status"] == "failed" and found[1].get("monitor_value") is None  # strict JSON: no NaN
    assert result.returncode == 0, result.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["strategy.freeze_depth"] == 8
    assert results["best_value"] == pytest.approx(found[0]["monitor_value"])
    assert (sweep / "summary.csv").is_file()


# --- launchers -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,target,keys", [
    ("slurm", "SlurmLauncher", {"partition": None, "gpus_per_node": 1, "timeout_min": 240, "array_parallelism": 16}),
    ("local", "LocalLauncher", {"gpus_per_node": 0, "timeout_min": 60}),
    ("parallel", "JoblibLauncher", {"n_jobs": 2}),
])
def test_launcher_presets_extend_the_plugins_configs(make_cfg, name, target, keys):
    plugin("hydra_joblib_launcher" if name == "parallel" else "hydra_submitit_launcher")
    launcher = make_cfg(f"hydra/launcher={name}").hydra.launcher
    assert launcher._target_.endswith(target)
    assert {k: launcher[k] for k in keys} == keys


def check_two_seed_sweep(result, sweep: Path) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    found = jobs(sweep)
    assert sorted(found) == [0, 1] and all(j["status"] == "completed" for j in found.values()), found
    assert {j["overrides"]["seed"] for j in found.values()} == {"0", "1"}
    assert sorted(summary_jobs(sweep)) == ["0", "1"]  # SweepSummary ran after this launcher's jobs


def test_submitit_local_launcher_runs_the_jobs_and_the_sweep_summary(tmp_path):
    plugin("hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "seed=0,1", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                     "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0", *TINY,
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=ENV)
    check_two_seed_sweep(result, sweep)
    assert any((sweep / ".submitit").glob("*/*_log.out"))  # each job ran as a submitit subprocess


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    plugin("hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "seed=0,1", "hydra/launcher=parallel", *TINY, f"hydra.sweep.dir={sweep}",
                     cwd=tmp_path, env=ENV)
    check_two_seed_sweep(result, sweep)
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
