"""The multitask cost benchmark runs end to end (figures only; no timing is asserted)."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def test_multitask_cost_quick_run(tmp_path):
    spec = importlib.util.spec_from_file_location("multitask_cost", ROOT / "benchmarks" / "multitask_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--quick", "--out", str(tmp_path / "out")])
    assert set(result["ms_per_step"]) == {"1 head", "3 heads"} and all(v > 0 for v in result["ms_per_step"].values())
    ms = result["ms_per_step"]
    assert abs(result["ratio_3_vs_1"] - ms["3 heads"] / ms["1 head"]) < 0.01  # the ratio is of the medians shown
