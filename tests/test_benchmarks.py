"""Every benchmark script runs end to end with --quick (they prove they run; nothing here times anything)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parity_quick(tmp_path):
    rows = load("parity").main(["--quick", "--out", str(tmp_path)])
    assert len(rows) == 1 and rows[0]["model"] == "resnet18"
    assert all(math.isfinite(rows[0][k]) and rows[0][k] > 0 for k in ("lightning_img_s", "loop_img_s", "ratio"))
    assert json.loads((tmp_path / "result.json").read_text())[0]["timed_steps"] == 3


def test_probe_sweep_quick(tmp_path):
    rows = load("probe_sweep").main(["--quick", "--out", str(tmp_path)])
    assert rows[0]["k"] == 2 and rows[0]["speedup"] > 0
    assert 0 <= rows[0]["naive_test_acc"] <= 1 and 0 <= rows[0]["cached_test_acc"] <= 1
    assert (tmp_path / "k2_cached" / "metrics.json").is_file() and (tmp_path / "result.md").is_file()
    assert "probe/head1/val_acc" in json.loads((tmp_path / "k2_cached" / "metrics.json").read_text())["metrics"]
