"""Shared fixtures: compose the real Hydra config with per-test output folders, and fast overrides."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "transferlab" / "conf"
BENCHMARKS = ROOT / "benchmarks"

# A few CPU steps at 32 px: enough to exercise every hook, fast enough for CI.
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "data.image_size=32", "data.batch_size=8", "++callbacks.rich_progress_bar=null",
        "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]


def compose_config(output_dir: Path, *overrides: str) -> DictConfig:
    """The composed config as ``python -m transferlab.run`` sees it, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_dir.parent)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir.parent / "outputs")
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(*overrides, fast=True)`` -> composed config whose outputs go to ``tmp_path/run``."""

    def _make(*overrides: str, fast: bool = True, run: str = "run") -> DictConfig:
        return compose_config(tmp_path / run, *(FAST if fast else []), *overrides)

    yield _make
    GlobalHydra.instance().clear()


def run_cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m transferlab.run *args`` in ``cwd``, as a user would type it, importing this checkout."""
    # This checkout's package first, whichever copy is installed (git worktrees share one environment).
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path, **(env or {})}
    return subprocess.run([sys.executable, "-m", "transferlab.run", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache (no weights anywhere), as on a fresh machine without internet."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def run_in_process(main, *args: str, monkeypatch) -> tuple[int, str]:
    """Exit code and stderr of a transferlab Hydra app (e.g. ``transferlab.run.main``) run here with ``args``.

    The same code path as ``python -m transferlab.<app>`` (``transferlab.entry.run_app``), without a new interpreter.
    """
    from transferlab.entry import run_app

    GlobalHydra.instance().clear()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", [main.__module__, *args])
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    try:
        run_app(main)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    finally:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    return code, err.getvalue()


def snapshot(folder: Path, skip: str | None = None) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (but those under a subfolder named ``skip``): its bytes and modification time, so
    comparing two snapshots shows any file written, even with the same bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() and skip not in p.relative_to(folder).parts}


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
