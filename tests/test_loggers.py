"""Every logger config fits one step and records the run's hyperparameters; TensorBoard runs are named after strategy,
model and swept values, list those keys first in HParams and are marked Failure when the run fails; an optional
logger whose package is missing is one line naming ``pip install``."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pytest
from conftest import FAST, run_in_process
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from transferlab.experiment import train
from transferlab.loggers import flat_config
from transferlab.run import main

QUICK = [*FAST, "callbacks.evaluation_figures=null"]
LOGGERS = ["tensorboard", "csv", "many", "none",
           pytest.param("mlflow", marks=pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                                           reason="pip install mlflow-skinny"))]


class Boom(Callback):
    """Fails the run after its first training step (a test-only callback)."""

    def on_train_batch_end(self, *args, **kwargs):
        raise RuntimeError("boom")


def hparams_data(log_dir) -> dict[str, plugin_data_pb2.HParamsPluginData]:
    """The HParams plugin records of a TensorBoard run folder, by kind: experiment, session_start_info, ..."""
    events = EventAccumulator(str(log_dir)).Reload()
    records = [plugin_data_pb2.HParamsPluginData.FromString(content)
               for content in events.PluginTagToContent("hparams").values()]
    return {record.WhichOneof("data"): record for record in records}


def dashboard_order(experiment) -> list[str]:
    """The hyperparameters as TensorBoard's HParams dashboard lists them: differing ones first, each part by name."""
    return [i.name for i in sorted(experiment.hparam_infos, key=lambda i: (not i.differs, i.name))]


def cli_run(tmp_path, monkeypatch, *args: str):
    """Run ``python -m transferlab.run *args`` in-process with outputs under ``tmp_path``; the run folder."""
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path / "outputs"))
    code, err = run_in_process(main, *args, monkeypatch=monkeypatch)
    assert code == 0, err[-3000:]
    [run] = (tmp_path / "outputs" / "runs").iterdir()
    return run


@pytest.mark.parametrize("logger", LOGGERS)
def test_every_logger_config_fits_and_writes_hparams(tmp_path, monkeypatch, logger):
    run = cli_run(tmp_path, monkeypatch, f"logger={logger}", *QUICK, "optimizer.lr=0.002")
    assert run.name.endswith("_finetune-efficientnet_lite0")  # the folder (and TensorBoard's run) says what ran
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    written = {p.name for p in run.iterdir()} & {"tensorboard", "csv", "mlruns"}
    assert written == {"tensorboard": {"tensorboard"}, "csv": {"csv"}, "many": {"tensorboard", "csv"}, "none": set(),
                       "mlflow": {"mlruns"}}[logger]
    if "tensorboard" in written:
        records = hparams_data(run / "tensorboard")  # the events stay in <run dir>/tensorboard/
        hparams = records["session_start_info"].session_start_info.hparams
        assert hparams["strategy"].string_value == "finetune" and hparams["status"].string_value == "completed"
        assert hparams["model.name"].string_value == "efficientnet_lite0"
        assert hparams["optimizer.lr"].number_value == pytest.approx(0.002)
        assert records["session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
        experiment = records["experiment"].experiment
        differing = {i.name for i in experiment.hparam_infos if i.differs}
        assert {"strategy", "status", "optimizer.lr", "data.image_size"} <= differing  # the overridden keys
        assert "model.name" not in differing
        order = dashboard_order(experiment)
        assert max(order.index(k) for k in differing) < order.index("model.name")  # listed first
        assert {m.name.tag for m in experiment.metric_infos} >= {"hp/test_acc"}
    if "csv" in written:
        hparams = (run / "csv" / "hparams.yaml").read_text()
        assert "strategy: finetune" in hparams and "model.name: efficientnet_lite0" in hparams
        assert "status: completed" in hparams and "optimizer.lr: 0.002" in hparams
        assert any(row.get("hp/test_acc") for row in csv.DictReader((run / "csv" / "metrics.csv").open()))
    if "mlruns" in written:
        [params] = (run / "mlruns").glob("*/*/params")
        assert (params / "strategy").read_text() == "finetune" and (params / "status").read_text() == "completed"
        assert (params / "model.name").read_text() == "efficientnet_lite0"
        assert (params.parent / "tags" / "mlflow.runName").read_text() == "finetune-efficientnet_lite0"
        assert (params.parent / "metrics" / "hp" / "test_acc").is_file()


def test_a_sweep_names_tensorboard_runs_by_swept_values_and_lists_those_keys_first(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    code, err = run_in_process(main, "-m", "optimizer.lr=0.01,0.001", *QUICK, f"hydra.sweep.dir={sweep}",
                               monkeypatch=monkeypatch)
    assert code == 0, err[-3000:]
    for job, lr in (("0", "0.01"), ("1", "0.001")):
        [log_dir] = (sweep / job / "tensorboard").iterdir()
        assert log_dir.name == f"finetune-efficientnet_lite0,lr={lr}"
        experiment = hparams_data(log_dir)["experiment"].experiment
        assert dashboard_order(experiment)[:3] == ["optimizer.lr", "status", "strategy"]  # only the swept key
        assert [i.name for i in experiment.hparam_infos][:2] == ["strategy", "status"]


def test_a_failed_run_is_marked_failure_with_status_failed(make_cfg, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        train(make_cfg("callbacks.evaluation_figures=null", "+callbacks.boom._target_=test_loggers.Boom"))
    records = hparams_data(tmp_path / "run" / "tensorboard")
    assert records["session_end_info"].session_end_info.status == api_pb2.STATUS_FAILURE  # HParams' Status filter
    assert records["session_start_info"].session_start_info.hparams["status"].string_value == "failed"
    assert "experiment" not in records  # a failed run never defines the dashboard's columns
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_flat_config_leads_with_strategy_and_the_overridden_keys(make_cfg):
    flat = flat_config(make_cfg("strategy=linear_probe", "data=cifar10", "optimizer.lr=0.5", fast=False))
    assert list(flat)[:3] == ["strategy", "data", "optimizer.lr"]
    assert flat["strategy"] == "linear_probe" and flat["data"] == "cifar10" and flat["optimizer.lr"] == 0.5


def test_wandb_without_its_package_is_one_line_naming_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed, whether it is or not
    code, err = run_in_process(main, "logger=wandb", *QUICK, f"hydra.run.dir={tmp_path / 'run'}",
                               monkeypatch=monkeypatch)
    lines = [line for line in err.splitlines() if line.startswith("transferlab: error:")]
    assert code == 2 and "Traceback" not in err
    assert lines == ["transferlab: error: logger.wandb needs the wandb package, which is not installed: "
                     "pip install wandb"]
