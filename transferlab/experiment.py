"""The experiment library behind every entry point: compose a config, build its parts, train, write metrics.json.

``python -m transferlab.run`` is a thin Hydra app over ``train``; ``predict`` and ``export`` rebuild trained modules
with ``load_module``; ``rank`` uses ``instantiate`` and ``load_config``; notebooks and benchmarks call ``load_config``
then ``train`` (or ``build``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from transferlab.atomic import AtomicCheckpointIO, write_text
from transferlab.contracts.checks import RULES, check_config, check_options, unknown_option
from transferlab.contracts.data_config import DataConfig
from transferlab.contracts.errors import TransferlabError, one_line, user_error
from transferlab.loggers import log_hparams, prepare_logger, run_name
from transferlab.quiet import silence_noise, tidy_callbacks
from transferlab.report import announce, headline
from transferlab.resume import EarlierJob, earlier_sweep_job, find_last_checkpoint
from transferlab.run_folder import check_fresh, claim_run_dir, release_run_dir
from transferlab.threads import environment, set_threads


def seed(cfg: DictConfig) -> None:
    """Seed every generator from ``cfg.seed`` (seed 0 is a seed; null leaves the run random)."""
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)


def instantiate(cfg: DictConfig, **kwargs):
    """``hydra.utils.instantiate`` with plain containers (checkpoint-safe hparams) and unwrapped user errors.

    Python objects in ``kwargs`` (backbone, data config) are passed as they are, never converted. A config key the
    target does not take (``+optimizer.lrr=0.1``) is a one-line error naming it, raised here even for a ``_partial_``
    config that is only called later (an optimizer, in ``configure_optimizers``).
    """
    check_options(cfg)
    try:
        target = hydra.utils.instantiate(cfg, _convert_="all", **({"_partial_": True} if kwargs else {}))
    except InstantiationException as err:
        raise user_error(err) or unknown_option(err, cfg) or err from None
    if not kwargs:
        return target
    try:
        return target(**kwargs)
    except TypeError as err:  # e.g. a strategy handing an unknown key on to its base class through **kwargs
        problem = unknown_option(err, cfg)
        if problem is None:
            raise
        raise problem from None


def check_resume(path: str | None) -> str | None:
    """``path`` when it is a readable checkpoint; a missing or truncated file is an error, not a fresh start."""
    if path is None:
        return None
    file = Path(path).expanduser()
    if not file.is_file():
        raise TransferlabError(f"resume={path}: no such checkpoint (look in <run dir>/checkpoints/last.ckpt)")
    try:
        torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # truncated, not a checkpoint, or carrying a pickle payload
        raise TransferlabError(f"resume={path}: unreadable checkpoint ({type(err).__name__}); "
                               "resume from another one, e.g. the best checkpoint") from None
    return str(file)


def resume_path(cfg: DictConfig, earlier: EarlierJob | None = None) -> str | None:
    """The checkpoint to continue from: a sweep job's ``earlier`` attempt's last.ckpt, else ``cfg.resume`` with
    ``auto`` resolved to the newest last.ckpt of a run with the same overrides."""
    if earlier is not None:
        return str(earlier.last)
    if cfg.get("resume") != "auto":
        return cfg.get("resume")
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return str(find_last_checkpoint(cfg.paths.log_dir, overrides, exclude=cfg.paths.output_dir))


def earlier_attempt(cfg: DictConfig) -> EarlierJob | None:
    """In a multirun with ``sweep_resume`` on and no ``resume=``: this job's earlier attempt (``resume.py``)."""
    RULES["sweep_resume"]("sweep_resume", cfg.get("sweep_resume", True))  # read before build checks the rest
    if cfg.get("resume") is not None or not cfg.get("sweep_resume", True) or not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return earlier_sweep_job(cfg.paths.log_dir, cfg.paths.output_dir, hydra_cfg.overrides.task)


def reuse(earlier: EarlierJob, output_dir: Path) -> float:
    """A sweep job that completed before: its metrics.json (with ``reused_from``) in this job's folder, and its
    monitored value for the sweeper; nothing is trained."""
    payload = dict(earlier.completed)
    payload.setdefault("reused_from", str(earlier.folder.resolve()))
    if earlier.folder.resolve() != output_dir.resolve():
        claim_run_dir(output_dir)
        try:
            write_metrics(output_dir, payload)
        finally:
            release_run_dir(output_dir)
    print(f"transferlab: this job completed in {payload['reused_from']}; its metrics are reused "
          "(sweep_resume=false runs it again)")
    value = payload.get("monitor_value")
    return math.nan if value is None else float(value)


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1}


def best_score(trainer: L.Trainer, last: float) -> float:
    """The monitored value at the best checkpoint's epoch (what the tested weights scored), else ``last``: the value
    sweepers optimise and the summary reports as "best"."""
    score = getattr(trainer.checkpoint_callback, "best_model_score", None)
    return float(score) if score is not None else last


def strict_json(value):
    """``value`` with every NaN or infinity replaced by None, so ``json.dumps`` writes strict JSON (``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_metrics(output_dir: Path, payload: dict) -> None:
    """Write ``metrics.json`` atomically and as strict JSON, so a crash never leaves half a file; it leads with
    ``status``, ``test`` and ``best`` (``report.headline``)."""
    write_text(output_dir / "metrics.json", json.dumps(strict_json(headline(payload)), indent=2, default=str,
                                                        allow_nan=False))


def build(cfg: DictConfig):
    """Seed, then instantiate the backbone, DataModule, strategy module, callbacks, loggers and Trainer."""
    missing = sorted(key for group in cfg if group != "hydra" and OmegaConf.is_config(cfg[group])
                     for key in OmegaConf.missing_keys(cfg[group]))  # full keys, e.g. "data.root"
    if missing:
        raise TransferlabError(f"Missing mandatory value: {missing[0]} (set it on the command line, e.g. "
                               f"{missing[0]}=...)")
    check_config(cfg)  # typed values, before any weights or data are read
    check_top_level_options(cfg)
    set_threads(cfg.get("threads"))  # before seeding: CPU results are bit-identical at the same thread count
    silence_noise()  # before the Trainer, whose construction prints the first of those lines
    name = run_name(cfg)
    logger_kwargs = {key: prepare_logger(key, c, name) for key, c in (cfg.get("logger") or {}).items() if c is not None}
    cache_features = bool(cfg.data.get("cache_features"))
    if cache_features and not getattr(hydra.utils.get_class(cfg.strategy._target_), "frozen_backbone", False):
        raise TransferlabError("data.cache_features=true needs strategy=linear_probe (a frozen backbone)")
    seed(cfg)
    backbone = instantiate(cfg.model)
    # A multi-task strategy declares its tasks; the data yields them unless data.tasks chooses otherwise.
    tasks = OmegaConf.to_container(cfg.strategy.tasks, resolve=True) if cfg.strategy.get("tasks") else None
    data_extra = {"tasks": tasks} if tasks and cfg.data.get("tasks") is None else {}
    if cache_features:  # the DataModule runs the frozen backbone once over train/val in setup("fit")
        data_extra["feature_extractor"] = backbone
    datamodule = instantiate(cfg.data, data_config=backbone.data_config, seed=cfg.seed, **data_extra)
    if getattr(datamodule, "tasks", None) and not tasks:
        raise TransferlabError("data.tasks is set but the strategy has one head; use strategy=multitask")
    module = instantiate(cfg.strategy, backbone=backbone, num_classes=datamodule.num_classes,
                         optimizer=instantiate(cfg.optimizer),
                         scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
                         **({"data_tasks": datamodule.tasks} if tasks else {}))
    if cfg.get("channels_last", False):
        module = module.to(memory_format=torch.channels_last)
        module.channels_last = True
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_cfg.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        raise TransferlabError(f"trainer.accelerator={trainer_cfg['accelerator']} needs a CUDA GPU and torch sees "
                               f"none (torch.cuda.is_available() is False); use trainer=cpu on this machine")
    callbacks = tidy_callbacks([instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None],
                               model_summary=trainer_cfg.get("enable_model_summary") is not False)
    loggers = [instantiate(cfg.logger[key], **kwargs) for key, kwargs in logger_kwargs.items()]
    if not loggers:  # nothing to log learning rates to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                              plugins=[AtomicCheckpointIO()])
    except MisconfigurationException as err:  # e.g. trainer=gpu on a machine without one
        raise TransferlabError(f"trainer: {one_line(err)} (use trainer=cpu on a machine without a GPU)") from None
    return backbone, datamodule, torch.compile(module) if cfg.get("compile", False) else module, trainer


TOP_LEVEL_OPTIONS = ("channels_last", "compile")  # transferlab's own, never passed to lightning.Trainer


def check_top_level_options(cfg: DictConfig) -> None:
    """``channels_last`` and ``compile`` are top-level keys; under ``trainer.`` they would reach the Trainer."""
    for key in TOP_LEVEL_OPTIONS:
        if key in (cfg.get("trainer") or {}):
            raise TransferlabError(f"trainer.{key} is now the top-level key {key}: use {key}="
                                   f"{str(cfg.trainer[key]).lower()} instead")


def train(cfg: DictConfig) -> float:
    """Run one experiment described by ``cfg``; return the monitored metric (for Hydra sweepers).

    Writes ``metrics.json`` in ``cfg.paths.output_dir`` whether the run completes or fails.
    """
    output_dir = Path(cfg.paths.output_dir)
    earlier = earlier_attempt(cfg)
    if earlier is not None and earlier.completed is not None:
        return reuse(earlier, output_dir)
    in_place = earlier is not None and earlier.folder.resolve() == output_dir.resolve()
    claim_run_dir(output_dir, continuing=in_place)  # before the try: a refused run writes nothing
    start = time.perf_counter()
    payload = {"status": "failed", "monitor": cfg.monitor, "monitor_mode": cfg.monitor_mode}
    trainer = None
    try:
        _, datamodule, module, trainer = build(cfg)
        trainer.fit(module, datamodule=datamodule, ckpt_path=check_resume(resume_path(cfg, earlier)))
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        validated = final_metrics(trainer)
        if cfg.get("test", True):
            trainer.test(module, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False)
        metrics = {**validated, **final_metrics(trainer)}
        payload.update(status="completed", metrics=metrics, best_model_path=best,
                       monitor_value=best_score(trainer, metrics.get(cfg.monitor, math.nan)))
        for source in (module, *trainer.callbacks):  # extra entries, e.g. DA model-selection reports
            if callable(getattr(source, "metrics_report", None)):
                payload.update(source.metrics_report())
        final = {f"hp/{k.replace('/', '_')}": v for k, v in metrics.items() if k.startswith(("test/", "val/acc_best"))}
        log_hparams(trainer, cfg, "completed", final)
        return payload["monitor_value"]
    except BaseException as err:
        if isinstance(err, SIGTERMException):
            payload["status"] = "interrupted"
        payload["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        if trainer is not None and payload["status"] != "completed":
            with contextlib.suppress(Exception):  # best effort: the error in flight is the one to report
                log_hparams(trainer, cfg, payload["status"], {})
        raise
    finally:
        payload["seconds"] = round(time.perf_counter() - start, 2)
        payload["environment"] = environment()
        if rank_zero_only.rank == 0:  # under DDP every rank runs train(); one writes
            try:
                write_metrics(output_dir, payload)
                if payload["status"] == "completed":
                    announce(headline(payload), output_dir)
            except (OSError, TransferlabError):  # e.g. the disk is full: the error in flight says so
                if payload["status"] == "completed":
                    raise
            finally:
                release_run_dir(output_dir)


CONFIG_PACKAGE = "transferlab.conf"  # the configs travel inside the package; Hydra finds them as pkg://transferlab.conf


def load_config(overrides: list[str] | tuple[str, ...] = (), output_dir: str | Path | None = None) -> DictConfig:
    """Compose the config exactly as the command line would, for notebooks and scripts.

    Args:
        overrides: command-line style overrides, e.g. ``["strategy=linear_probe", "trainer.max_epochs=2"]``.
        output_dir: the run folder; default a new ``<paths.log_dir>/runs/<time>_<strategy>-<model>`` as on the
            command line (``paths.log_dir`` is ``outputs/`` under the current directory unless
            ``TRANSFERLAB_OUTPUTS`` says otherwise). A folder that holds an earlier run is refused before anything
            is written (``run_folder.check_fresh``).

    Example:
        >>> cfg = load_config(["trainer.max_epochs=1"])
        >>> test_acc = train(cfg)  # doctest: +SKIP
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    output_dir = Path(output_dir or cfg.hydra.run.dir).resolve()  # default: runs/<time>_<strategy>-<model>
    check_fresh(output_dir)  # a re-run notebook cell must not rewrite an earlier run's config.yaml
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path.cwd())
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=False)
    return cfg


# --- trained modules back from their run folders (predict, export) ---------------------------------------------
SAFE_PREFIX = "transferlab."


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only; anything else is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TransferlabError(f"ckpt={path}: no such checkpoint") from None
    except Exception as err:  # truncated, or a pickle payload weights_only refuses
        raise TransferlabError(f"ckpt={path}: unreadable or unsafe checkpoint ({type(err).__name__})") from None


def check_targets(node, where: str) -> None:
    """Refuse any ``_target_`` outside ``transferlab.``: a config from elsewhere must not run arbitrary code."""
    if OmegaConf.is_dict(node):
        for key, value in node.items():
            if key == "_target_" and not str(value).startswith(SAFE_PREFIX):
                raise TransferlabError(f"{where}: refusing _target_={value} (only {SAFE_PREFIX}* is built)")
            check_targets(value, where)


def load_module(ckpt_path: str | Path):
    """The trained module (eval mode), its class names, preprocessing and the run config.

    For a multi-task checkpoint the class names are ``{task: names}`` and the tasks are rebuilt from the specs
    the checkpoint saved (plain containers), so no data is needed.
    """
    ckpt = load_checkpoint(ckpt_path)
    run_dir = Path(ckpt_path).resolve().parent.parent  # the command line's .hydra/, or load_config's config.yaml
    config = next((p for p in (run_dir / ".hydra" / "config.yaml", run_dir / "config.yaml") if p.is_file()), None)
    if config is None:
        raise TransferlabError(f"ckpt={ckpt_path}: no {run_dir / '.hydra' / 'config.yaml'}; keep the checkpoint "
                               "inside its run folder")
    cfg = OmegaConf.load(config)
    for group in ("model", "strategy"):
        check_targets(cfg[group], str(config))
    extra = ckpt.get("transferlab") or {}
    names = extra.get("class_names")
    if not names:
        raise TransferlabError(f"ckpt={ckpt_path}: the checkpoint stores no class names")
    with open_dict(cfg):
        cfg.model.weights = "none"  # the checkpoint holds every weight
    backbone = instantiate(cfg.model)
    task_names = extra.get("task_class_names")
    if task_names:  # multi-task: every head as trained, from the saved specs
        tasks = ckpt.get("hyper_parameters", {}).get("tasks")
        module = instantiate(cfg.strategy, backbone=backbone, num_classes=None, optimizer=None, tasks=tasks)
        names = {task: list(task_names[task]) for task in module.specs}
    else:
        module = instantiate(cfg.strategy, backbone=backbone, num_classes=len(names), optimizer=None)
        names = list(names)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), names, DataConfig(**extra["data_config"]), cfg
