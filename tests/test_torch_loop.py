"""benchmarks/torch_loop.py, a shipped recipe trained by a hand-written PyTorch loop, and the matrix benchmark's loop
jobs: the loop's metrics.json and reproducibility, its agreement with transferlab, the "torch loop test" column of
the tables, and ``--merge``."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import timm
from conftest import load_benchmark

from transferlab.experiment import load_config, train

TINY = ["data.image_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "threads=1"]


@pytest.fixture(scope="module")
def loop():
    return load_benchmark("torch_loop")


@pytest.fixture(scope="module")
def matrix():
    return load_benchmark("matrix")


def transferlab_run(matrix, run_dir, overrides: list[str]) -> dict:
    """``python -m transferlab.run`` in this process, as a matrix job runs it (QUIET); its metrics.json."""
    train(load_config([*overrides, *matrix.QUIET], output_dir=run_dir))
    return json.loads((run_dir / "metrics.json").read_text())


# --- the loop itself -------------------------------------------------------------------------------------------------
def test_loop_writes_metrics_json_and_repeats_itself_exactly(loop, tmp_path):
    first = loop.main(["--run-dir", str(tmp_path / "a"), *TINY, "seed=4"])
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert written == json.loads(json.dumps(first))
    assert written["status"] == "completed" and written["runner"] == "loop" and written["monitor"] == "val/acc"
    assert written["environment"]["threads"] == 1 and written["seconds"] > 0 and written["best_epoch"] == 0
    assert 0 <= written["metrics"]["test/acc"] <= 1 and written["monitor_value"] == written["metrics"]["val/acc"]
    again = loop.main(["--run-dir", str(tmp_path / "b"), *TINY, "seed=4"])
    assert again["metrics"] == first["metrics"]  # same seed, same threads: the same run


@pytest.mark.parametrize("args", [["strategy=linear_probe"], ["+optimizer.lrr=0.1"], ["trainer.max_epochs=-2"],
                                  ["strategy.freeze_depth=9"], ["nokey=1"], ["--epochs", "3"]])
def test_a_bad_argument_is_one_line_and_exit_code_2(loop, tmp_path, monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["torch_loop.py", "--run-dir", str(tmp_path / "run"), *TINY, *args])
    with pytest.raises(SystemExit) as exit_:
        loop.cli(loop.main)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("transferlab: error: "), lines


def test_a_used_run_folder_is_refused(loop, tmp_path):
    loop.main(["--run-dir", str(tmp_path / "a"), *TINY])
    with pytest.raises(Exception, match="already holds a run"):
        loop.main(["--run-dir", str(tmp_path / "a"), *TINY])


def test_with_transferlab_random_draws_the_loop_is_transferlab_s_run(loop, matrix, tmp_path, monkeypatch):
    """transferlab builds one more timm model (the reference its packaged-weight renaming checks shapes against)
    before the head; making that draw too, the loop reproduces a run using every recipe feature it reads (frozen
    stages, gradual unfreezing, MLP head with dropout, label smoothing, per-stage learning rates, clipping) to
    float32 rounding. The matrix's loop runs skip the draw: their head starts from its own random init."""
    built = loop.lite0

    def lite0(pretrained):
        parts = built(pretrained)
        timm.create_model("efficientnet_lite0", pretrained=False)
        return parts

    monkeypatch.setattr(loop, "lite0", lite0)
    recipe = ["data.image_size=32", "data.batch_size=16", "trainer.max_epochs=2", "trainer.limit_train_batches=6",
              "trainer.limit_val_batches=3", "trainer.limit_test_batches=3", "strategy.freeze_depth=3",
              "strategy.unfreeze_epochs=[1]", "strategy.head_hidden=[32]", "strategy.head_dropout=0.2",
              "strategy.label_smoothing=0.1", "strategy.backbone_lr_mult=0.5", "strategy.layer_decay=0.8",
              "trainer.gradient_clip_val=1.0", "optimizer.lr=3e-3", "seed=3", "threads=1"]
    ours = loop.main(["--run-dir", str(tmp_path / "loop"), *recipe])
    theirs = transferlab_run(matrix, tmp_path / "tl", recipe)
    for key in ("val/acc", "test/acc"):
        assert ours["metrics"][key] == pytest.approx(theirs["metrics"][key], abs=1e-6), key
    assert ours["metrics"]["train/loss"] == pytest.approx(theirs["metrics"]["train/loss_epoch"], rel=1e-5)
    assert ours["monitor_value"] == pytest.approx(theirs["monitor_value"], abs=1e-6)


@pytest.mark.slow  # ~40 s; its CI-sized twin above shows the loop is transferlab's run, draw for draw
def test_loop_and_transferlab_reach_comparable_accuracy(loop, matrix, tmp_path):
    """Digits at 28 px, 2 epochs, the shipped finetune recipe at batch 32, seed 0, each with its own random inits (as
    in the matrix).

    Tolerance: at this setting seeds 0-2 gave test accuracy 0.76-0.82 (loop) and 0.74-0.78 (transferlab), six runs
    spanning 0.08; the binomial standard error of a difference of two runs on 360 test images is ~0.03. A gap of
    0.15 (about twice that span, 5 standard errors) would mean a different training path, and a broken one (no
    update, wrong labels or learning rates) stays near chance (0.1), far below the floor of 0.5."""
    recipe = ["data.image_size=28", "data.batch_size=32", "trainer.max_epochs=2", "seed=0", "threads=1"]
    ours = loop.main(["--run-dir", str(tmp_path / "loop"), *recipe])["metrics"]["test/acc"]
    theirs = transferlab_run(matrix, tmp_path / "tl", recipe)["metrics"]["test/acc"]
    assert ours > 0.5 and theirs > 0.5 and abs(ours - theirs) < 0.15, (ours, theirs)


# --- the matrix's loop jobs -----------------------------------------------------------------------------------------
META = {"date": "2025-01-02", "cpu": "Some CPU (2 CPUs)", "threads": 1, "jobs": 2, "wall_s": 600.0, "quick": False,
        "versions": "torch 2, lightning 2, timm 1"}


def record(task: str, row: str, seed: int, acc: float, runner: str | None = None, code: str = "abc1234") -> dict:
    made = {"task": task, "row": row, "seed": seed, "split_seed": 0, "code": code, "status": "completed",
            "seconds": 10.0, "val": 0.5, "monitor": "val/acc", "threads": 1, "test": {"test/acc": acc}}
    return made if runner is None else {**made, "runner": runner}  # no field: written before runners existed


def line(text: str, row: str) -> str:
    (found,) = [one for one in text.splitlines() if one.startswith(f"| {row} |")]
    return found


def test_plan_adds_loop_jobs_beside_their_rows_only_when_asked(matrix):
    def jobs(runner, quick=False):
        return matrix.plan(argparse.Namespace(quick=quick, runner=runner))

    default, every = jobs(None), jobs("all")
    assert {j["runner"] for j in default} == {"transferlab"} and jobs("transferlab") == default
    loops = [j for j in every if j["runner"] == "loop"]
    assert loops == jobs("loop") and [j for j in every if j["runner"] == "transferlab"] == default
    assert {(j["task"], j["row"]) for j in loops} == {(t, r) for t, rows in matrix.LOOP_ROWS.items() for r in rows}
    twins = {(j["task"], j["row"], j["seed"], j["split_seed"]): j["overrides"] for j in default}
    assert all(twins[(j["task"], j["row"], j["seed"], j["split_seed"])] == j["overrides"] for j in loops)
    assert len(loops) == 5 + 5 + 10  # digits scratch and finetune x 5 seeds, few-shot finetune x 10
    assert [j["runner"] for j in jobs(None, quick=True)].count("loop") == 1


def test_job_folders_stay_named_as_before(matrix, tmp_path, monkeypatch):
    seen = []

    def fail(overrides, run_dir, threads, script=None):
        seen.append((run_dir.name, script and script.name))
        return None, "not run"

    monkeypatch.setattr(matrix, "run", fail)
    job = {"task": "digits", "row": "finetune, freeze 0", "seed": 2, "split_seed": 0, "overrides": []}
    for made in (job, {**job, "runner": "transferlab"}, {**job, "runner": "loop"}):
        assert matrix.run_job(made, tmp_path, 1)["status"] == "failed"
    assert seen == [("digits_finetune__freeze_0_s2_p0", None)] * 2 + [("loop_digits_finetune__freeze_0_s2_p0",
                                                                        "torch_loop.py")]


def test_tables_put_the_loop_figure_beside_its_row_and_nowhere_else(matrix):
    protocol = load_benchmark("protocol")
    runs = [record("digits", "scratch", s, 0.80 + s / 100) for s in (0, 1)]
    runs += [record("digits", "finetune, freeze 0", s, 0.95 + s / 100, "transferlab") for s in (0, 1)]
    runs += [record("fewshot", "finetune", s, 0.60 + s / 100) for s in (0, 1)]
    loops = [record("digits", "finetune, freeze 0", s, 0.11 + s / 50, "loop") for s in (0, 1)]
    plain = matrix.tables({"meta": META, "runs": runs})
    assert "torch loop" not in plain and plain.startswith("Measured 2025-01-02 on Some CPU (2 CPUs), 1 intra-op")
    text = matrix.tables({"meta": META, "runs": runs + loops})
    figure = f"{protocol.fmt([0.11, 0.13])} (n=2)"
    assert text.count(figure) == 1 and f"| {figure} |" in line(text, "finetune, freeze 0")
    assert "| — |" in line(text, "scratch")
    assert line(text, "finetune, freeze 0").count(protocol.fmt([0.15, 0.15])) == 1  # gain from transferlab's runs
    digits, fewshot = text.split("**few-shot")
    assert digits.count("torch loop test") == 2 and "torch loop test" not in fewshot  # intro + header; none there
    assert sum(one.startswith("| finetune, freeze 0 |") for one in text.splitlines()) == 1
    (intro, *rest), (plain_intro, *plain_rest) = text.splitlines(), plain.splitlines()
    assert intro.startswith(plain_intro) and "torch loop test = " in intro
    widened = False
    for ours, before in zip(rest, plain_rest, strict=True):  # nothing changed but the column
        cells = ours.split(" | ")
        if "torch loop test" in ours or figure in ours or " | — | " in ours:
            del cells[4]
        if cells[0].startswith("|---"):  # the separator under a header with the column has one more cell
            cells, widened = [ours.replace("---|", "", 1) if widened else ours], False
        widened = widened or "torch loop test" in ours
        assert " | ".join(cells) == before

    later = {**META, "date": "2025-02-03", "code": "def5678", "runners": ["loop"], "jobs": 1, "wall_s": 120.0}
    merged = matrix.tables({"meta": [META, later], "runs": runs + loops[:1] + [record(
        "digits", "finetune, freeze 0", 1, 0.13, "loop", "def5678")]})
    assert merged.startswith("Measured in 2 batches of jobs: (1) transferlab runs, 2025-01-02 on Some CPU (2 CPUs), "
                             "1 intra-op thread(s) per run, 2 run(s) at a time, torch 2, lightning 2, timm 1, code "
                             "abc1234, 10 min wall; (2) loop runs, 2025-02-03")
    assert "1 run(s) at a time, torch 2, lightning 2, timm 1, code def5678, 2 min wall." in merged
    assert merged.split("Measured", 1)[1].split(". Accuracies")[0].count("code") == 2
    assert f"| {figure} |" in line(merged, "finetune, freeze 0")

    failed = {**loops[0], "status": "failed", "error": "boom"}
    assert "digits/finetune, freeze 0/s0 (loop): boom" in matrix.tables({"meta": META, "runs": runs + [failed]})


def test_merge_keeps_the_old_records_and_replaces_the_rerun_ones(matrix, tmp_path, monkeypatch):
    old = [record("digits", "scratch", 0, 0.8), record("digits", "finetune, freeze 0", 0, 0.9),
           record("digits", "finetune, freeze 0", 0, 0.2, "loop"), record("multitask", "fixed", 0, 0.9)]
    (tmp_path / "old.json").write_text(json.dumps({"meta": META, "runs": old}))
    ran = []

    def fake_job(job, out, threads):
        ran.append(job)
        return {**job, "status": "completed", "seconds": 1.0, "val": 0.6, "monitor": "val/acc", "threads": threads,
                "test": {"test/acc": 0.7}}

    monkeypatch.setattr(matrix, "run_job", fake_job)
    args = ["--runner", "loop", "--tasks", "digits", "--jobs", "1", "--out", str(tmp_path / "out")]
    data = matrix.main([*args, "--merge", str(tmp_path / "old.json"), "--record", str(tmp_path / "new.json")])
    assert {j["runner"] for j in ran} == {"loop"} and len(ran) == 10
    assert json.loads((tmp_path / "new.json").read_text()) == data
    assert data["meta"][0] == META and data["meta"][1]["runners"] == ["loop"] and len(data["meta"]) == 2
    runs = data["runs"]
    assert len(runs) == 4 + 9 and runs[:2] == old[:2] and runs[3] == old[3]  # transferlab's kept, untouched
    assert runs[2]["runner"] == "loop" and runs[2]["seed"] == 0 and runs[2]["test"]["test/acc"] == 0.7  # replaced
    assert len({(r["task"], r["row"], r["seed"], matrix.runner(r)) for r in runs}) == len(runs)

    ran.clear()  # merging into a merged record: its meta is a list already
    again = matrix.main(["--runner", "loop", "--tasks", "fewshot", "--jobs", "1", "--out", str(tmp_path / "out2"),
                         "--merge", str(tmp_path / "new.json")])
    assert len(again["meta"]) == 3 and len(again["runs"]) == 13 + 10 and again["runs"][:13] == runs
    assert "Measured in 3 batches of jobs" in matrix.tables(again)


def test_merge_of_an_unreadable_record_is_refused_before_any_job(matrix, tmp_path, monkeypatch):
    monkeypatch.setattr(matrix, "run_job", lambda *args: pytest.fail("a job ran"))
    (tmp_path / "bad.json").write_text("{}")
    for name in ("missing.json", "bad.json"):
        with pytest.raises(Exception, match="--merge"):
            matrix.main(["--runner", "loop", "--merge", str(tmp_path / name), "--out", str(tmp_path / "o")])
