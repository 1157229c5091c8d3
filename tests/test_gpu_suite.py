"""benchmarks/gpu_suite.sh as a user runs it: the CPU dry run writes every section with numbers into one results file
(JSON + markdown) marked as a dry run; a folder that already holds a result (before torch is imported), and a
machine without CUDA when --dry-run is absent, are refused with one line. Nothing here asserts a timing value."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
SECTIONS = {"parity", "throughput", "extraction", "dataload", "dann"}


def run_suite(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True, timeout=timeout, env=env)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_dry_run_writes_every_section_with_numbers_and_a_used_folder_is_refused(tmp_path):
    out = tmp_path / "x"
    run = run_suite("--dry-run", "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["command.txt", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    assert data["dry_run"] is True and data["complete"] is True and data["device"]["name"].startswith("CPU")
    assert "model.weights=none" in data["weights"] and data["peak_tflops"] is None

    parts = data["parts"]
    assert {name.split("/")[0] for name in parts} == SECTIONS
    for name, entry in parts.items():
        expected = "skipped" if name.endswith("/compile") else "ok"  # compile is recorded as skipped on the CPU
        assert entry["status"] == expected, (name, entry)
        assert number(entry["seconds"]) or entry["status"] == "skipped"

    parity = parts["parity/eager"]
    assert all(number(parity[k]["median"]) for k in ("lightning_img_s", "loop_img_s"))
    assert number(parity["ratio"]) and math.isfinite(parity["overhead_ms_per_step"]) and parity["repeats"] == 2
    assert len(parity["s_per_step"]["lightning"]) == len(parity["s_per_step"]["loop"]) == 2
    throughput = parts["throughput/eager"]
    assert number(throughput["img_s"]["median"]) and number(throughput["gflop_per_img_counted"])
    extraction = parts["extraction/eager"]
    assert number(extraction["img_s"]["median"]) and number(extraction["extract_fn_img_s"]["median"])
    dataload = parts["dataload/loaders_and_training"]
    for path in ("cpu_workers", "on_device"):
        assert number(dataload["loader_img_s"][path]) and number(dataload["headroom"][path])
        assert number(dataload["lightning_train_img_s"][path]["median"])
    assert number(dataload["model_img_s"])
    dann = parts["dann/step_cost"]
    assert number(dann["ms_per_step"]["dann"]["median"]) and number(dann["ms_per_step"]["source_only"]["median"])
    assert number(dann["ratio_dann_vs_source_only"]) and "workaround" not in dann  # transferlab materialises pairs
    assert {row["meets"] for row in data["goals"] if row["goal"] != "mfu"} == {"n/a (dry run)"}

    page = (out / "results.md").read_text()
    assert "DRY RUN" in page and "## Goals" in page
    assert all(f"## {n}." in page for n in range(1, 6))

    before = (out / "results.json").read_text()
    again = run_suite("--dry-run", "--out", str(out), timeout=120)
    assert again.returncode != 0 and again.stdout.strip() == ""
    assert len(lines(again.stderr)) == 1 and "already holds results.json" in again.stderr, again.stderr
    assert (out / "results.json").read_text() == before


def test_a_used_folder_is_refused_before_torch_or_lightning_is_imported(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    code = ("import runpy, sys\n"
            "sys.argv = sys.argv[1:]\n"
            "try:\n"
            "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit as done:\n"
            "    print(done.code, [m for m in ('torch', 'lightning') if m in sys.modules])\n")
    run = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks" / "gpu_suite"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "2 []", run.stdout + run.stderr
    assert len(lines(run.stderr)) == 1 and "already holds results.json" in run.stderr, run.stderr


def test_without_dry_run_a_machine_without_cuda_is_refused_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the suite would run for minutes")
    run = run_suite("--out", str(tmp_path / "y"), timeout=120)
    assert run.returncode != 0 and run.stdout.strip() == ""
    assert len(lines(run.stderr)) == 1 and "no CUDA GPU" in run.stderr, run.stderr
    assert not (tmp_path / "y").exists()


def test_results_md_gpu_goals_are_generated_from_the_suites_goals(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from gpu_suite.render import pending
    from protocol import section

    assert section("gpu_goals") == pending()
    assert pending().count("not yet measured") == 6  # five goals and MFU, until a GPU run fills them
