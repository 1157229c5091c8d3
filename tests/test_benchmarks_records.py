"""The timing benchmarks (strategy_cost, multitask_cost, probe_sweep) keep their result as a record, and their
sections of RESULTS.md are rendered from the record alone: ``--report FILE`` measures nothing and prints, byte for
byte, what the measuring run printed and wrote. Each runs ``--quick`` once (seconds; nothing is timed here)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import BENCHMARKS, load_benchmark

from transferlab.contracts.errors import EXIT_USER_ERROR, PREFIX, TransferlabError

ROWS = {  # script: the first cell of every row its quick table has
    "strategy_cost": ["source_only", "dann", "dann / source_only"],
    "multitask_cost": ["1 head", "3 heads", "3 heads / 1 head"],
    "probe_sweep": ["2"],
}


@pytest.fixture
def results_page(tmp_path, monkeypatch):
    """A copy of RESULTS.md that ``--write-results`` writes instead of the real one; default benchmark folders go
    under ``tmp_path/outputs`` (``TRANSFERLAB_OUTPUTS``)."""
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path / "outputs"))
    page = tmp_path / "RESULTS.md"
    page.write_text((BENCHMARKS / "RESULTS.md").read_text())
    load_benchmark("strategy_cost")  # puts benchmarks/ on sys.path: the scripts' own protocol module
    import protocol

    monkeypatch.setattr(protocol, "RESULTS", page)
    return page


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ROWS)
def test_quick_record_reports_the_same_text_and_section(name, tmp_path, results_page, capsys, keep_threads):
    import protocol

    bench = load_benchmark(name)
    record, out = tmp_path / "record.json", tmp_path / "out"
    bench.main(["--quick", "--out", str(out), "--record", str(record)])
    measured = capsys.readouterr().out
    text = (out / "result.md").read_text()
    result = json.loads(record.read_text())
    assert json.loads((out / "result.json").read_text()) == result  # result.json is the record
    assert text in measured and text == bench.table(result) + "\n"
    assert result["threads"] == 1 and result["quick"] and "1 intra-op thread(s)" in text
    assert f"--record {record}" in text  # the command that made it
    assert result["code"] == protocol.code_version() and f", code {result['code']}, by " in text  # and the code
    assert all(f"\n| {row} | " in text for row in ROWS[name])

    bench.main(["--report", str(record), "--write-results"])
    assert capsys.readouterr().out == text  # byte-identical, nothing else said
    assert protocol.section(name, results_page.read_text()) == text
    assert not (tmp_path / "outputs").exists()  # nothing measured: no benchmark folder
    assert protocol.section(name, (BENCHMARKS / "RESULTS.md").read_text()) != text  # the real page untouched


@pytest.mark.parametrize("name", ROWS)
def test_threads_are_set_before_any_work(name, tmp_path, keep_threads):
    (tmp_path / "result.json").write_text("{}")  # a used --out: refused before any work
    torch.set_num_threads(1)
    with pytest.raises(TransferlabError, match="already holds"):
        load_benchmark(name).main(["--quick", "--threads", "2", "--out", str(tmp_path)])
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("name", ROWS)
def test_report_of_a_missing_record_is_one_line_and_exit_2(name, tmp_path, monkeypatch, capsys):
    bench, common = load_benchmark(name), load_benchmark("common")
    missing = tmp_path / "nowhere.json"
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--report", str(missing)])
    with pytest.raises(SystemExit) as done:  # what `python benchmarks/<name>.py --report nowhere.json` does
        common.cli(bench.main)
    printed = capsys.readouterr()
    assert done.value.code == EXIT_USER_ERROR and printed.out == ""
    (line,) = printed.err.splitlines()
    assert line.startswith(PREFIX) and str(missing) in line


@pytest.mark.parametrize("name", ROWS)
def test_results_md_section_is_its_committed_records_rendering(name):
    protocol = load_benchmark("protocol")
    result = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())
    assert protocol.section(name) == load_benchmark(name).table(result) + "\n"
    assert not result["quick"] and result["threads"] == 1
