"""transferlab as a user installs it: a wheel in a fresh virtualenv, run from another folder with configs of its own.

The wheel is built from this checkout and installed without dependencies into a new venv that sees this
environment's packages (torch, Lightning, ...) through a ``.pth`` line, so nothing is downloaded; the package itself,
its configs included, comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

from transferlab.experiment import load_config

JOB = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
       "trainer.limit_test_batches=2", "data.image_size=32", "data.batch_size=8", "logger=none",
       "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false"]

USER_EXPERIMENT = """\
# @package _global_
# A user's own experiment, kept in their project, not in transferlab
defaults:
  - override /strategy: linear_probe
  - override /data: my_digits

tags: [from-my-folder]
"""
USER_DATA = """\
defaults:
  - digits          # the packaged group option, extended
  - _self_
val_fraction: 0.25
"""


def run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(the fresh venv's bin folder, an environment for it without this checkout on the path)."""
    base = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    source = base / "source"  # a copy: setuptools writes build/ into the tree it builds
    shutil.copytree(ROOT / "transferlab", source / "transferlab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
         str(source)], cwd=base, env=env)
    [wheel] = (base / "dist").glob("transferlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "transferlab/conf/config.yaml" in names and "transferlab/conf/strategy/dann.yaml" in names
    run([sys.executable, "-m", "venv", str(base / "venv")], cwd=base, env=env)
    bin_dir = base / "venv" / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=base,
        env=env)
    site = Path(run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=base, env=env).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., not transferlab
    return bin_dir, env


def test_the_wheel_runs_a_job_from_any_folder_with_the_console_script(installed, tmp_path):
    bin_dir, env = installed
    where = run([str(bin_dir / "python"), "-c", "import transferlab; print(transferlab.__file__)"], tmp_path, env)
    assert where.stdout.startswith(str(bin_dir.parent))  # the wheel's copy, not this checkout
    run([str(bin_dir / "transferlab"), *JOB, "hydra.run.dir=job"], tmp_path, env)
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= metrics["test"]["test/acc"] <= 1.0
    assert run([str(bin_dir / "transferlab-eval"), "--help"], tmp_path, env).stdout.startswith("usage:")


def user_configs(folder: Path) -> Path:
    (folder / "experiment").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "experiment" / "mine.yaml").write_text(USER_EXPERIMENT)
    (folder / "data" / "my_digits.yaml").write_text(USER_DATA)
    return folder


def test_a_users_own_config_folder_adds_experiments_and_group_options(installed, tmp_path):
    bin_dir, env = installed
    user_configs(tmp_path / "my_configs")
    run([str(bin_dir / "python"), "-m", "transferlab.run", "--config-dir", "my_configs", "experiment=mine", *JOB,
         "hydra.run.dir=job"], tmp_path, env)
    config = (tmp_path / "job" / ".hydra" / "config.yaml").read_text()
    assert "transferlab.strategies.LinearProbe" in config and "val_fraction: 0.25" in config
    assert "from-my-folder" in config
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["status"] == "completed"


def test_hydra_searchpath_adds_a_users_folder_to_load_config_too(tmp_path):
    user = user_configs(tmp_path / "my_configs")
    cfg = load_config([f"hydra.searchpath=[file://{user}]", "experiment=mine"], output_dir=tmp_path / "run")
    assert cfg.strategy._target_ == "transferlab.strategies.LinearProbe" and cfg.data.val_fraction == 0.25
    assert list(cfg.tags) == ["from-my-folder"]
