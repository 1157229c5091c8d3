"""Every benchmark script runs end to end with --quick (they prove they run; nothing here times anything)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from conftest import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory):
    """One ``parity.py --quick --profile`` run with its record: (module, result, run folder, record file)."""
    folder = tmp_path_factory.mktemp("parity")
    bench = load_benchmark("parity")
    result = bench.main(["--quick", "--profile", "--out", str(folder / "run"), "--record", str(folder / "r.json")])
    return bench, result, folder / "run", folder / "r.json"


def test_parity_quick_times_all_three_sides(parity_run):
    bench, result, run, _ = parity_run
    (row,) = result["rows"]
    assert row["model"] == "resnet18" and result["sides"] == ["loop", "bare", "as_run"]
    for side in result["sides"]:
        times = row["s_per_step"][side]
        assert len(times) == result["repeats"] == 3 and all(math.isfinite(t) and t > 0 for t in times)
        assert row["sides"][side]["img_s"] > 0 and row["sides"][side]["min"] <= row["sides"][side]["median"]
    assert set(row["overhead_ms"]) == {"bare", "as_run"}
    assert [order[0] for order in row["order"]] == ["loop", "bare", "as_run"]  # every side leads once
    text = (run / "result.md").read_text()
    assert all(f"| {side} |" in text for side in result["sides"])
    assert json.loads((run / "result.json").read_text())["threads"] == result["threads"] == 1


def test_parity_report_rebuilds_the_table_from_the_record_without_measuring(parity_run, monkeypatch, capsys):
    bench, _, run, record = parity_run
    monkeypatch.setattr(bench, "measure", lambda *a, **k: pytest.fail("--report measured"))
    capsys.readouterr()
    again = bench.main(["--report", str(record)])
    assert capsys.readouterr().out == bench.table(again) + "\n" == (run / "result.md").read_text()


def test_parity_profile_has_entries(parity_run):
    _, result, run, _ = parity_run
    profile = result["profile"]
    assert profile["side"] == "as_run" and profile["steps"] == result["steps"] and profile["top"]
    assert all(r["ms_per_step"] >= 0 or r["range"] == "(outside any range)" for r in profile["top"])
    assert any(r["range"].startswith("[Callback]") for r in profile["top"])
    assert profile["stages"]["backward"] > 0 and "framework (the rest)" in profile["stages"]
    assert "| range | ms/step | share | calls/step |" in (run / "result.md").read_text()


def test_parity_goal_verdict_needs_the_medians_interval_on_one_side_of_the_goal():
    bench = load_benchmark("parity")
    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0]
    low, high, coverage = bench.median_interval(values)
    assert (low, high) == (2.0, 8.0) and math.isclose(coverage, 1 - 2 * 10 / 512)  # n = 9: x_(2), x_(8)
    assert bench.median_interval(values[:5]) is None  # 5 values cannot give 95%
    interval = bench.median_interval(values)
    assert bench.verdict(interval, 8.0) == "met" and bench.verdict(interval, 1.5) == "**not met**"
    assert bench.verdict(interval, 5.0) == "not resolved"  # the median meets it, its interval does not
    assert bench.verdict(None, 5.0) == "—"


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
