"""Every benchmark script runs end to end with --quick (they prove they run; nothing here times anything)."""

from __future__ import annotations

import json
import math

import yaml
from conftest import BENCHMARKS, load_benchmark


def test_parity_quick(tmp_path):
    rows = load_benchmark("parity").main(["--quick", "--out", str(tmp_path)])
    assert len(rows) == 1 and rows[0]["model"] == "resnet18"
    assert all(math.isfinite(rows[0][k]) and rows[0][k] > 0 for k in ("lightning_img_s", "loop_img_s", "ratio"))
    assert json.loads((tmp_path / "result.json").read_text())[0]["timed_steps"] == 3


def test_probe_sweep_quick(tmp_path):
    rows = load_benchmark("probe_sweep").main(["--quick", "--out", str(tmp_path)])
    assert rows[0]["k"] == 2 and rows[0]["speedup"] > 0
    assert 0 <= rows[0]["naive_test_acc"] <= 1 and 0 <= rows[0]["cached_test_acc"] <= 1
    assert (tmp_path / "k2_cached" / "metrics.json").is_file() and (tmp_path / "result.md").is_file()
    assert "probe/head1/val_acc" in json.loads((tmp_path / "k2_cached" / "metrics.json").read_text())["metrics"]


def test_strategy_cost_quick(tmp_path):
    result = load_benchmark("strategy_cost").main(["--quick", "--out", str(tmp_path)])
    assert set(result["ms_per_step"]) == {"dann", "source_only"} and all(v > 0 for v in result["ms_per_step"].values())
    assert math.isclose(result["ratio_dann_vs_source_only"],
                        result["ms_per_step"]["dann"] / result["ms_per_step"]["source_only"])


def test_throughput_quick(tmp_path):
    rows = load_benchmark("throughput").main(["--quick", "--out", str(tmp_path)])
    row = rows[0]
    assert row["model"] == "resnet18" and row["train_img_s"] > 0 and row["extract_img_s"] > 0
    # ResNet-18 forward: 1.82 GMAC = 3.64 GFLOP at 224 px; at 32 px about 3.64 * (32/224)^2 = 0.074 GFLOP
    assert 0.06 < row["forward_gflop_per_img"] < 0.09 and row["train_gflop_per_img"] > 2 * row["forward_gflop_per_img"]


def test_dataload_quick(tmp_path):
    rows = load_benchmark("dataload").main(["--quick", "--out", str(tmp_path)])
    assert [r["on_device"] for r in rows] == [False, True]
    assert all(r["loader_img_s"] > 0 and r["model_img_s"] > 0 and r["headroom"] > 0 for r in rows)


def test_da_protocol_quick_runs_both_phases_and_its_tables_rebuild_from_the_records(tmp_path):
    bench = load_benchmark("da_protocol")
    data = bench.main(["--quick", "--jobs", "2", "--out", str(tmp_path / "run"), "--record", str(tmp_path / "r.json")])
    runs = data["runs"]
    assert {r["phase"] for r in runs} == {"select", "evaluate"} and all(r["status"] == "completed" for r in runs)
    assert {r["method"] for r in runs if r["phase"] == "evaluate"} == {"source_only", "adabn", "dann", "cdan", "mcc"}
    assert all(r["pair"] == "fonts_to_digits" for r in runs if r["phase"] == "evaluate")
    assert all(0 <= r["target_test_acc"] <= 1 for r in runs)
    assert bench.tables(json.loads((tmp_path / "r.json").read_text())) == (tmp_path / "run" / "result.md").read_text()
    again = bench.main(["--quick", "--jobs", "2", "--out", str(tmp_path / "run")])  # continued: nothing re-run
    assert [r["seconds"] for r in again["runs"]] == [r["seconds"] for r in runs]


def test_results_md_da_tables_are_generated_from_the_committed_records():
    bench = load_benchmark("da_protocol")
    records = json.loads((BENCHMARKS / "results" / "da_protocol.json").read_text())
    page = (BENCHMARKS / "RESULTS.md").read_text()
    section = page.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0]
    assert section.strip() == bench.tables(records).strip()
    assert not records["meta"]["quick"] and {r["status"] for r in records["runs"]} == {"completed"}


def test_dann_defaults_are_the_candidate_the_committed_selection_chose():
    bench = load_benchmark("da_protocol")
    chosen = bench.choose(json.loads((BENCHMARKS / "results" / "da_protocol.json").read_text())["runs"])
    defaults = yaml.safe_load((BENCHMARKS.parent / "transferlab" / "conf" / "strategy" / "dann.yaml").read_text())
    for override in bench.CANDIDATES[chosen]:
        key, value = override.removeprefix("strategy.").split("=")
        assert defaults[key] == float(value), key
