"""What loggers get from a run: its name (strategy, model, swept values), its hyperparameters with the strategy and
the swept keys first, and its status, so TensorBoard's HParams dashboard tells runs apart and filters failed ones."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from transferlab.contracts.errors import TransferlabError


def log_hparams(trainer: L.Trainer, cfg: DictConfig, status: str, final: dict[str, float]) -> None:
    """Give every logger the run's hyperparameters (``flat_config`` with ``status``) and ``final`` metrics.

    TensorBoard pairs them in its HParams dashboard (``log_tensorboard_hparams``); other loggers take them apart.
    """
    params = flat_config(cfg, status=status)
    leading = {"strategy", "status", *job_overrides()}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            log_tensorboard_hparams(logger, params, final, leading, status == "completed", trainer.global_step)
        else:
            logger.log_hyperparams(params)
            if final:
                logger.log_metrics(final, step=trainer.global_step)
        logger.save()


@rank_zero_only
def log_tensorboard_hparams(logger: TensorBoardLogger, params: dict, final: dict[str, float], leading: set[str],
                            completed: bool, step: int) -> None:
    """``logger.log_hyperparams(params, final)``, with what the HParams dashboard shows about the run.

    The ``leading`` keys (strategy, status, the swept or overridden ones) are marked as differing between runs, which
    the dashboard lists first; the session ends as Success or Failure (its Status filter). A run that did not
    complete writes no experiment summary, which the dashboard would otherwise take for every run's (one without
    metrics), only its hyperparameters and status.
    """
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    logger.hparams.update(params)  # hparams.yaml
    if final:
        logger.log_metrics(final, step)
    writer = logger.experiment._get_file_writer()  # as Lightning's log_hyperparams does: reopened after finalize
    for summary in hparams(params, final):
        value = summary.value[0]
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        if data.WhichOneof("data") == "experiment":
            if not completed:
                continue
            for info in data.experiment.hparam_infos:
                info.differs = info.name in leading
        elif data.WhichOneof("data") == "session_end_info":
            data.session_end_info.status = api_pb2.STATUS_SUCCESS if completed else api_pb2.STATUS_FAILURE
        value.metadata.plugin_data.content = data.SerializeToString()
        writer.add_summary(summary, step)


def flat_config(cfg: DictConfig, **first) -> dict:
    """The resolved config as ``{"group.key": scalar}`` for loggers' hyperparameters.

    ``strategy`` (its config choice) comes first, then ``first``, then this job's swept (or, in a single run,
    overridden) keys, with the choice of an overridden config group (``data=cifar10`` -> ``"data": "cifar10"``),
    then the rest.
    """
    skip = ("hydra", "paths", "callbacks", "logger")
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
             for k in cfg if k not in skip}
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif not str(key).startswith("_"):
                flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(plain)
    lead, choices = {"strategy": strategy_name(cfg), **first}, config_choices()
    for key in job_overrides():
        if key in flat:
            lead[key] = flat.pop(key)
        elif isinstance(choices.get(key), str):
            lead[key] = choices[key]
    return {**lead, **flat}


def config_choices() -> dict:
    """Hydra's config group choices (``{"strategy": "finetune", ...}``); {} without Hydra."""
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def is_multirun() -> bool:
    """Whether this is a job of a Hydra multirun (``-m``)."""
    return HydraConfig.initialized() and HydraConfig.get().get("mode") == RunMode.MULTIRUN


def job_overrides() -> dict[str, str]:
    """This job's command-line overrides as ``{key: value}``; in a multirun only those of the swept keys.

    The sweep's ``multirun.yaml`` says which keys were swept; without it (another sweeper) every override counts.
    """
    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    overrides = dict(str(o).lstrip("+~").partition("=")[::2] for o in hydra_cfg.overrides.task)
    if is_multirun():
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no (readable) multirun.yaml: keep them all
            sweep = OmegaConf.load(Path(hydra_cfg.sweep.dir) / "multirun.yaml").hydra.overrides.task
            swept = {o.key_or_group for o in OverridesParser.create().parse_overrides(list(sweep))
                     if o.is_sweep_override()}
            overrides = {k: v for k, v in overrides.items() if k in swept}
    return overrides


def strategy_name(cfg: DictConfig) -> str:
    """The strategy's config choice (``finetune``), else its class name."""
    return config_choices().get("strategy") or str(cfg.strategy.get("_target_", "")).rsplit(".", 1)[-1]


def run_name(cfg: DictConfig) -> str:
    """``<strategy>-<model>``, then in a multirun the job's swept values: ``finetune-resnet18,freeze_depth=2,lr=0.01``.

    Keys are shortened to their last part where that is unambiguous; any character unsafe in a folder name becomes
    ``_``. TensorBoard (a sub-folder in a multirun), MLflow and W&B runs take this name.
    """
    swept = {k: v for k, v in job_overrides().items() if k not in ("strategy", "model")} if is_multirun() else {}
    short = [k.rsplit(".", 1)[-1] for k in swept]
    parts = [f"{strategy_name(cfg)}-{cfg.model.get('name') or config_choices().get('model', 'model')}"]
    parts += [f"{s if short.count(s) == 1 else k}={v}" for (k, v), s in zip(swept.items(), short)]
    return re.sub(r"[^\w.,=+-]", "_", ",".join(parts))[:200]


LOGGER_PACKAGES = {"WandbLogger": ("wandb", "wandb"), "MLFlowLogger": ("mlflow", "mlflow-skinny")}  # module, pip name
RUN_NAME_ARGS = {"MLFlowLogger": "run_name", "WandbLogger": "name"}


def prepare_logger(key: str, logger_cfg: DictConfig, name: str) -> dict:
    """Check that logger ``key`` can be built and return what it takes beyond its config: the run ``name``.

    TensorBoard takes it as its ``sub_dir`` (a sub-folder of ``<run dir>/tensorboard/``; not as its ``version``,
    which the progress bar would show) in a multirun only: a single run's events stay in ``<run dir>/tensorboard/``,
    whose folder name says strategy and model. MLflow and W&B take it as their run name unless the config sets one.
    A missing optional package (W&B, MLflow) is a one-line error naming ``pip install``; an MLflow file store
    (``tracking_uri: file:...``) is allowed, which MLflow 3 otherwise refuses.
    """
    target = str(logger_cfg.get("_target_", "")).rsplit(".", 1)[-1]
    if target in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[target][0]) is None:
        module, package = LOGGER_PACKAGES[target]
        raise TransferlabError(f"logger.{key} needs the {module} package, which is not installed: "
                               f"pip install {package}")
    if target == "MLFlowLogger" and str(logger_cfg.get("tracking_uri") or "").startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if target == "TensorBoardLogger" and logger_cfg.get("sub_dir") is None and is_multirun():
        return {"sub_dir": name}
    arg = RUN_NAME_ARGS.get(target)
    return {arg: name} if arg and arg in logger_cfg and logger_cfg[arg] is None else {}
