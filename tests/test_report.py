"""The end of a run: a summary on the console and in run.log, and metrics.json leading with what a reader wants."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import FAST, run_cli

from transferlab.report import best_epoch, headline, summary


def test_a_run_ends_with_its_summary_on_the_console_and_in_run_log(tmp_path):
    run = tmp_path / "run"
    done = run_cli(*FAST, "trainer.max_epochs=2", "logger=none", "callbacks.evaluation_figures=null",
                   f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics)[:3] == ["status", "test", "best"] and metrics["status"] == "completed"
    assert metrics["test"]["test/acc"] == metrics["metrics"]["test/acc"]
    best = metrics["best"]
    assert best["monitor"] == "val/acc" and best["epoch"] in (0, 1) and best["checkpoint"].endswith(".ckpt")
    # "best" is what the tested (best) checkpoint scored, not the last epoch's value
    states = torch.load(best["checkpoint"], map_location="cpu", weights_only=True)["callbacks"].values()
    scores = [float(s["best_model_score"]) for s in states if s.get("monitor") == "val/acc" and "best_model_score" in s]
    assert scores and best["value"] == pytest.approx(scores[0])
    for text in (done.stdout + done.stderr, (run / "run.log").read_text()):
        assert "run completed" in text and re.search(rf"run folder +{re.escape(str(run))}", text)
        assert re.search(rf"best val/acc +{best['value']:.4f} \(epoch {best['epoch']}\)", text)
        assert re.search(rf"test/acc +{metrics['test']['test/acc']:.4f}", text)


def test_summary_of_a_domain_adaptation_run_lists_source_and_target():
    payload = headline({"status": "completed", "monitor": "val/acc", "monitor_value": 0.9, "seconds": 12.0,
                        "best_model_path": "/r/checkpoints/best-epoch007.ckpt",
                        "metrics": {"test/source_acc": 0.91, "test/target_acc": 0.42, "val/acc": 0.9}})
    text = summary(payload, "/r")
    assert re.search(r"best val/acc +0.9000 \(epoch 7\)", text) and re.search(r"test/source_acc +0.9100", text)
    assert re.search(r"test/target_acc +0.4200", text) and re.search(r"wall time +12.0 s", text)
    assert text.splitlines()[-1].split() == ["run", "folder", "/r"]
    assert best_epoch("best-epoch012.ckpt") == 12 and best_epoch("") is None and best_epoch("last.ckpt") is None
