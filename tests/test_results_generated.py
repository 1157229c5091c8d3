"""Results a reader can regenerate: the matrix and the contention benchmark run end to end (``slow``), their
neighbours stop on their own, and the few-shot protocol's validation holds no more labels than its training."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from conftest import BENCHMARKS, load_benchmark
from fakes import make_image_tree

from transferlab.data.digits import DigitsDataModule
from transferlab.data.imagefolder import ImageFolderDataModule


@pytest.mark.slow
def test_matrix_quick_runs_every_task_and_continues_an_out_folder(tmp_path):
    bench = load_benchmark("matrix")
    data = bench.main(["--quick", "--jobs", "2", "--out", str(tmp_path / "run")])
    assert {r["task"] for r in data["runs"]} == set(bench.TASKS)
    assert all(r["status"] == "completed" and r["threads"] == 1 for r in data["runs"])
    text = bench.tables(data)
    assert all(title in text for title, *_ in bench.TASKS.values())
    again = bench.main(["--quick", "--jobs", "2", "--out", str(tmp_path / "run")])  # continued: nothing re-run
    assert [r["seconds"] for r in again["runs"]] == [r["seconds"] for r in data["runs"]]


@pytest.mark.slow
def test_contention_quick_writes_its_table(tmp_path):
    result = load_benchmark("contention").main(["--quick", "--out", str(tmp_path / "c")])
    (row,) = result["rows"]
    assert row["variant"] == "passive" and row["alone_median_s"] > 0 and row["at_once_median_s"] > 0
    assert len(row["alone_s"]) == len(row["neighbours_s"]) == len(row["at_once_s"]) == 1  # --quick: one of each
    assert (tmp_path / "c" / "result.md").read_text().count("| passive |") == 1


def test_contention_neighbours_stop_on_their_own():
    """A neighbour asked for 0.3 s of work ends by itself: ``timeout`` fails the test if it runs on (a liveness
    check, not a timing)."""
    subprocess.run([sys.executable, "-c", load_benchmark("contention").BUSY, "0.3"], check=True, timeout=60)


def test_fewshot_validation_holds_no_more_labels_than_training():
    data = DigitsDataModule(image_size=16, samples_per_class=10, val_samples_per_class=10, split_seed=1)
    data.setup()
    train, val = data.train_set.labels.numpy(), data.val_set.labels.numpy()
    assert Counter(train.tolist()) == Counter(val.tolist()) == dict.fromkeys(range(10), 10)
    full = DigitsDataModule(image_size=16, samples_per_class=10, split_seed=1)
    full.setup()
    assert len(full.val_set) > 100  # without the key, validation keeps its 10% share of all digits


def test_imagefolder_val_samples_per_class(tmp_path):
    for split in ("train", "val"):
        make_image_tree(tmp_path / split, classes=("a", "b", "c"), per_class=8, size=16, modes=("RGB",))
    data = ImageFolderDataModule(root=tmp_path, image_size=16, samples_per_class=3, val_samples_per_class=2)
    data.setup()
    assert Counter(data.val_set.targets) == {0: 2, 1: 2, 2: 2} and len(data.train_set) == 9


# --- every generated section of RESULTS.md is its committed record's rendering ---------------------------------------
def _lines(text_or_lines) -> str:
    text = text_or_lines if isinstance(text_or_lines, str) else "\n".join(text_or_lines)
    return text if text.endswith("\n") else text + "\n"


GENERATED = {  # section of RESULTS.md: (benchmark, committed record, the section rendered from the record)
    "matrix": ("matrix", "runs.json", lambda bench, record: bench.tables(record)),
    "parity": ("parity", "parity.json", lambda bench, record: bench.table(record)),
    "contention": ("contention", "contention.json", lambda bench, record: bench.table(record)),
}


@pytest.mark.parametrize("name", GENERATED)
def test_results_md_section_is_generated_from_its_committed_record(name):
    script, record_file, render = GENERATED[name]
    bench, protocol = load_benchmark(script), load_benchmark("protocol")
    record = json.loads((BENCHMARKS / "results" / record_file).read_text())
    assert protocol.section(name) == _lines(render(bench, record))
    assert "Not yet generated" not in protocol.section(name)


def test_parity_record_is_a_full_cpu_run_of_every_configuration_and_side():
    bench = load_benchmark("parity")
    record = json.loads((BENCHMARKS / "results" / "parity.json").read_text())
    assert not record["quick"] and record["threads"] == 1 and record["repeats"] >= 5
    assert [(row["model"], row["image_size"], row["batch"]) for row in record["rows"]] == [
        spec[:3] for spec in bench.CONFIGS["cpu"]]
    for row in record["rows"]:
        assert all(len(row["s_per_step"][side]) == record["repeats"] for side in bench.SIDES)
    assert record["profile"]["stages"]


def test_contention_record_is_a_full_run_of_every_variant():
    bench = load_benchmark("contention")
    record = json.loads((BENCHMARKS / "results" / "contention.json").read_text())
    assert not record["quick"] and record["job"] == bench.JOB and record["jobs"] == 3
    assert {row["variant"] for row in record["rows"]} == set(bench.VARIANTS)


def test_matrix_record_is_a_full_run_of_every_task_at_one_thread_count():
    bench = load_benchmark("matrix")
    data = json.loads((BENCHMARKS / "results" / "runs.json").read_text())
    metas = data["meta"] if isinstance(data["meta"], list) else [data["meta"]]
    assert not any(meta["quick"] for meta in metas)
    threads = {meta["threads"] for meta in metas}
    assert len(threads) == 1 and {r["threads"] for r in data["runs"]} == threads
    for task, (_, _, rows, seeds, *_) in bench.TASKS.items():
        for row in rows:
            runs = bench.done([r for r in data["runs"] if r.get("runner", "transferlab") == "transferlab"], task, row)
            assert len(runs) == len(seeds) >= 5, (task, row)
