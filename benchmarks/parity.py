"""transferlab's training path against a hand-written torch loop, bare and as ``python -m transferlab.run`` runs it.

Three sides train a deep copy of one built ``strategy=finetune`` module (same initial weights) on the same data path
as a real run: the digits DataModule's train DataLoader, per-sample seeded crops included (nothing pre-materialised):

- ``loop``: a hand-written torch loop over that loader: forward, cross-entropy, zero_grad, backward, the module's
  own optimizer (AdamW over its parameter groups) and schedule (warm-up + cosine), nothing else;
- ``bare``: the Trainer ``transferlab.experiment.build`` makes with ``logger=none callbacks=none`` and no progress
  bar, model summary or checkpointing;
- ``as_run``: the Trainer, default callbacks, TensorBoard logger (into this benchmark's folder) and progress bar
  exactly as ``build`` makes them for ``python -m transferlab.run``.

Both Lightning sides take the config of a real run with only the benchmark's model, size, batch, precision and
``trainer.max_steps`` set, and validation off (``trainer.limit_val_batches=0``), so every timed step is a training
step. A step's time is the interval between the starts of consecutive steps within one epoch (so it includes
loading the next batch), after the warm-up; repeats rotate which side runs first. Reported per side: the median
s/step with its min-max and interquartile range over repeats, img/s at the median, and the overhead of ``bare`` and
``as_run`` against ``loop`` as the median (and min-max) of the per-repeat paired differences; the same in process
CPU time, which depends less on other processes' load than wall time does.

``--profile`` then runs the ``as_run`` side once more under ``torch.profiler``, with every Lightning action (each
hook, the batch fetch, the training batch), transferlab's forward, loss and training-step logging and Lightning's
``self.log`` as ranges: the time per stage (forward and loss, backward, optimizer, batch loading, the rest: the
framework) and the top ranges, each counting its own operators and Python but not its sub-ranges.

    python benchmarks/parity.py --threads 1    # CPU: timm test_resnet, 16 px, batch 8; ResNet-18, 32 px, batch 32
    python benchmarks/parity.py --threads 1 --profile          # ... and the profile of the as_run side
    python benchmarks/parity.py --config gpu                   # ResNet-50 224 px batch 256 bf16 channels_last
                                                               # (eager, compiled) and ResNet-18 at 32 px
    python benchmarks/parity.py --quick                        # a smoke run
    python benchmarks/parity.py --threads 1 --record benchmarks/results/parity.json --write-results
    python benchmarks/parity.py --report benchmarks/results/parity.json --write-results    # the table only

Each run writes into a new ``outputs/benchmarks/parity/<time>`` (or ``--out``, a new or empty folder):
``result.json`` (the record, every repeat's time) and ``result.md`` (its rendering by ``table``).
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.profilers import Profiler

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import (  # noqa: E402
    add_out_argument,
    add_record_arguments,
    cli,
    device_name,
    fresh_out,
    now,
    publish,
    report,
    republish,
)
from timing_record import header, machine  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402
from transferlab.threads import environment  # noqa: E402

NAME = "parity"
SIDES = ("loop", "bare", "as_run")
GOAL_MS = 3.0  # overhead per step against the loop, at most
CONFIGS = {  # name: [(model, image size, batch, precision, channels_last, compile)]
    # The framework's cost per step is fixed, and the noise of a repeat grows with the step: timm's 0.1 M-parameter
    # test_resnet at 16 px, batch 8 (a ~12 ms step on one CPU thread, profiled) resolves it to a fraction of a ms;
    # ResNet-18's ~210 ms step, a real model's, hides a few ms in its repeat-to-repeat noise of ~10 ms.
    "cpu": [("timm:test_resnet", 16, 8, "32-true", False, False), ("resnet18", 32, 32, "32-true", False, False)],
    "gpu": [("resnet50", 224, 256, "bf16-mixed", True, False), ("resnet50", 224, 256, "bf16-mixed", True, True),
            ("resnet18", 32, 256, "bf16-mixed", True, False)],
}
QUICK = [("resnet18", 16, 4, "32-true", False, False)]
BARE = ["logger=none", "callbacks=none", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
        "+trainer.enable_checkpointing=false"]
VALIDATION = "trainer.limit_val_batches=0"


def overrides(spec, threads: int, max_steps: int, side: str) -> list[str]:
    """The run's config for one side: the spec, ``max_steps`` and validation off; ``bare`` also drops the logger,
    callbacks, progress bar, model summary and checkpointing."""
    model, size, batch, precision, channels_last, _ = spec
    gpu = ["trainer=gpu"] if precision != "32-true" else []
    group, _, name = model.partition(":")  # "timm:<name>": any timm model
    return [f"model={group}", *([f"model.name={name}"] if name else []), "model.weights=none", "strategy=finetune",
            "optimizer=adamw", *gpu,
            f"trainer.precision={precision}", f"channels_last={str(channels_last).lower()}", f"data.image_size={size}",
            f"data.batch_size={batch}", "seed=0", f"threads={threads}", f"trainer.max_steps={max_steps}", VALIDATION,
            *(BARE if side == "bare" else [])]


# --- timing -------------------------------------------------------------------------------------------------------
class StepClock:
    """Start times of the steps after ``warmup``, per epoch: the mean step time over whole intervals within epochs.

    An interval runs from one step's start to the next one's (its batch loaded and on the device), so it holds one
    step and one batch's loading; the device is synchronised only at each epoch's first and last timed start. Wall
    time is what a run takes; the process's CPU time (all its threads) is what it costs, and changes less with the
    load of other processes on the machine.
    """

    def __init__(self, device: torch.device, warmup: int, total: int):
        self.device, self.warmup, self.total = device, warmup, total
        self.spans: dict[int, list[tuple[int, float, float]]] = {}  # epoch -> (step, wall, cpu) at first/last start

    def mark(self, epoch: int, step: int, last_of_epoch: bool) -> None:
        if step < self.warmup:
            return
        span = self.spans.setdefault(epoch, [])
        if not span or last_of_epoch or step == self.total - 1:
            wall = now(self.device)
            span[1:] = [(step, wall, time.process_time())]

    def per_step(self, which: int) -> float:
        spans = [(s[-1][which] - s[0][which], s[-1][0] - s[0][0]) for s in self.spans.values() if len(s) > 1]
        return sum(t for t, _ in spans) / sum(n for _, n in spans)

    @property
    def seconds(self) -> tuple[float, float]:
        """Wall and process CPU seconds per step."""
        return self.per_step(1), self.per_step(2)


class ClockCallback(L.Callback):
    """Marks each training step's start on a ``StepClock`` (first of the callbacks)."""

    def __init__(self, clock: StepClock):
        self.clock = clock

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.clock.mark(trainer.current_epoch, trainer.global_step, batch_idx == trainer.num_training_batches - 1)


def lightning_side(spec, side: str, base, args, out: Path, callbacks=()):
    """``(trainer, module, datamodule)`` of a Lightning side: build's trainer and datamodule, a copy of ``base``."""
    cfg = load_config(overrides(spec, args.threads, args.warmup + args.steps + 1, side), output_dir=out)
    _, datamodule, _, trainer = build(cfg)
    module = copy.deepcopy(base)
    trainer.callbacks[:0] = list(callbacks)  # first: the clock marks a step before any other hook runs
    return trainer, torch.compile(module) if spec[5] else module, datamodule


def lightning_seconds(spec, side: str, base, args, out: Path, device) -> tuple[float, float]:
    clock = StepClock(device, args.warmup, args.warmup + args.steps + 1)
    trainer, module, datamodule = lightning_side(spec, side, base, args, out, [ClockCallback(clock)])
    trainer.fit(module, datamodule=datamodule)
    return clock.seconds


def loop_seconds(spec, base, args, out: Path, device) -> tuple[float, float]:
    """The hand-written loop over the same DataModule's train loader, with the module's optimizer and schedule."""
    cfg = load_config(overrides(spec, args.threads, args.warmup + args.steps + 1, "bare"), output_dir=out)
    _, datamodule, _, _ = build(cfg)
    total = args.warmup + args.steps + 1
    model = copy.deepcopy(base).to(device).train()
    step_model = torch.compile(model) if spec[5] else model
    defaults = getattr(model.optimizer_factory, "keywords", {})
    optimizer = model.optimizer_factory(model.parameter_groups(float(defaults.get("lr", 1e-3)),
                                                               float(defaults.get("weight_decay", 0.0))))
    schedule = (model.scheduler_factory(optimizer, total_steps=total, max_epochs=cfg.trainer.max_epochs)
                if model.scheduler_factory else None)
    bf16, smoothing = spec[3].startswith("bf16"), float(model.hparams.get("label_smoothing", 0.0))
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    clock, step, epoch = StepClock(device, args.warmup, total), 0, 0
    while step < total:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for i, (images, target) in enumerate(loader):
            images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
            clock.mark(epoch, step, i == len(loader) - 1)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(step_model(images), target, label_smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None and schedule.get("interval", "epoch") == "step":
                schedule["scheduler"].step()
            step += 1
            if step == total:
                break
        if schedule is not None and schedule.get("interval", "epoch") == "epoch":
            schedule["scheduler"].step()
        epoch += 1
    return clock.seconds


# --- statistics ---------------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    """Median, min, max and quartiles (inclusive method; all equal for one value)."""
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q1, "q3": q3}


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float] | None:
    """A distribution-free interval for the median: order statistics ``(x_(k), x_(n+1-k))`` with the largest ``k``
    whose coverage (binomial, p = 1/2) is at least ``level``; ``(low, high, coverage)``, or None for too few values."""
    x, n = sorted(values), len(values)
    k, tail = 0, 0.0
    while k < n and 2 * (tail + math.comb(n, k) / 2**n) <= 1 - level:
        tail, k = tail + math.comb(n, k) / 2**n, k + 1
    return (x[k - 1], x[n - k], 1 - 2 * tail) if k else None


def verdict(interval: tuple[float, float, float] | None, goal: float) -> str:
    """``met`` when a ``median_interval`` lies at or below ``goal``, ``not met`` when above it, else unresolved."""
    if interval is None:
        return "—"
    low, high, _ = interval
    return "met" if high <= goal else "**not met**" if low > goal else "not resolved"


def paired(times: dict[str, list[float]], side: str) -> list[float]:
    """ms/step of ``side`` over the loop in each repeat (the two were timed in the same repeat)."""
    return [1000 * (a - b) for a, b in zip(times[side], times["loop"])]


def summarize(times: dict[str, list[float]], cpu: dict[str, list[float]], batch: int) -> dict:
    """Per side: the spread of wall s/step, img/s at its median and the median process CPU s/step; per framework
    side: the spread of its per-repeat overhead over the loop, in wall and in CPU ms/step."""
    sides = {side: {**spread(t), "img_s": batch / statistics.median(t), "cpu_median": statistics.median(cpu[side])}
             for side, t in times.items()}
    per_repeat = {side: paired(times, side) for side in SIDES if side != "loop"}
    overhead = {side: {**spread(values), "per_repeat": values, "cpu_median": statistics.median(paired(cpu, side))}
                for side, values in per_repeat.items()}
    return {"sides": sides, "overhead_ms": overhead}


def measure(spec, args, out: Path, device) -> dict:
    """One configuration: the three sides, ``args.repeats`` times each, the order rotated every repeat."""
    model, size, batch, precision, channels_last, compiled = spec
    base_cfg = load_config(overrides(spec, args.threads, args.warmup + args.steps + 1, "bare"), output_dir=out / "base")
    _, datamodule, base, _ = build(base_cfg)  # the Trainer built here sets the run's flags (deterministic) for all
    datamodule.setup("fit")
    batches = len(datamodule.train_dataloader())
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    orders = []
    for r in range(args.repeats):
        order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]
        orders.append(list(order))
        for side in order:
            gc.collect()
            folder = out / f"r{r}_{side}"
            wall, used = (loop_seconds(spec, base, args, folder, device) if side == "loop"
                          else lightning_seconds(spec, side, base, args, folder, device))
            times[side].append(wall)
            cpu[side].append(used)
    return {"model": model, "image_size": size, "batch": batch, "precision": precision, "channels_last": channels_last,
            "compile": compiled, "device": device_name(device), "batches_per_epoch": batches,
            "deterministic": torch.are_deterministic_algorithms_enabled(), "s_per_step": times,
            "cpu_s_per_step": cpu, "order": orders, **summarize(times, cpu, batch)}


# --- profile ------------------------------------------------------------------------------------------------------
class Ranges(Profiler):
    """Lightning's profiled actions (every hook, the batch fetch, the training batch) as ``torch.profiler`` ranges."""

    def __init__(self):
        super().__init__()
        self.open: dict[str, list] = {}

    def start(self, action_name: str) -> None:
        scope = torch.autograd.profiler.record_function(action_name)
        scope.__enter__()
        self.open.setdefault(action_name, []).append(scope)

    def stop(self, action_name: str) -> None:
        if self.open.get(action_name):
            self.open[action_name].pop().__exit__(None, None, None)


def ranged(name: str, fn):
    """``fn`` inside a ``torch.profiler`` range called ``name``."""
    def wrapper(*args, **kwargs):
        with torch.autograd.profiler.record_function(name):
            return fn(*args, **kwargs)
    return wrapper


class ProfileWindow(L.Callback):
    """``torch.profiler`` over the steps ``warmup`` to ``last`` (exclusive), started one step earlier so that its
    start-up is not recorded: the profile covers the intervals between those steps' starts, ``wall`` their time."""

    def __init__(self, warmup: int, last: int):
        self.warmup, self.last, self.wall = warmup, last, 0.0
        self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                               schedule=torch.profiler.schedule(wait=0, warmup=1,
                                                                                active=last - warmup))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        step = trainer.global_step
        if step == self.warmup - 1:
            self.profiler.start()
        elif step == self.warmup:
            self.profiler.step()
            self.wall = now(pl_module.device)
        elif step == self.last:
            self.wall = now(pl_module.device) - self.wall
            self.profiler.stop()
        elif self.warmup < step < self.last:
            self.profiler.step()


def short(name: str) -> str:
    """A range's name without a callback's state key (``ModelCheckpoint{'monitor': ...}`` -> ``ModelCheckpoint``)."""
    head, brace, rest = name.partition("{")
    return head + rest.rpartition("}")[2] if brace else name


RANGES = ("[", "transferlab.", "Lightning.", "torchmetrics.", "Optimizer.", "run_training_")  # named ranges


def attribute(events) -> dict[str, tuple[float, int]]:
    """Self CPU time (us) and calls per innermost named range: an operator counts towards the range that ran it."""
    owned: dict[str, list] = {}
    for event in events:
        owner = event
        while owner is not None and not owner.name.startswith(RANGES):
            owner = owner.cpu_parent
        key = short(owner.name) if owner is not None else "(outside any range)"
        entry = owned.setdefault(key, [0.0, 0])
        entry[0] += event.self_cpu_time_total
        entry[1] += event is owner
    return {k: (v[0], v[1]) for k, v in owned.items()}


STAGES = {  # the parts of a step the hand-written loop has too (range names contain these); the rest is the framework
    "forward and loss": ("transferlab.forward", "transferlab.classification_loss"),
    "backward": ("Strategy.backward",),
    "optimizer: step, zero_grad, schedule": ("Optimizer.step#", "Optimizer.zero_grad#", ".lr_scheduler_step"),
    "batch loading": ("].train_dataloader_next",),
}


def profile_side(spec, side: str, base, args, out: Path, top: int) -> dict:
    """A Lightning side under ``torch.profiler`` for ``args.steps`` steps after the warm-up: time per stage (what the
    loop also does, and the rest: the framework) and the top ranges."""
    window = ProfileWindow(args.warmup, args.warmup + args.steps)
    trainer, module, datamodule = lightning_side(spec, side, base, args, out, [window])
    trainer.profiler = Ranges()
    inner = getattr(module, "_orig_mod", module)
    for name in ("forward", "classification_loss", "log_training", "check_finite"):  # transferlab's step parts
        setattr(inner, name, ranged(f"transferlab.{name}", getattr(inner, name)))
    inner.log = ranged("Lightning.log", inner.log)
    if isinstance(getattr(inner, "train_acc", None), torch.nn.Module):
        inner.train_acc.update = ranged("torchmetrics.train_acc", inner.train_acc.update)
    trainer.fit(module, datamodule=datamodule)
    owned = attribute(window.profiler.events())
    steps, total_us = args.steps, window.wall * 1e6
    owned["(outside any range)"] = (total_us - sum(us for k, (us, _) in owned.items()
                                                   if k != "(outside any range)"), 0)
    rows = sorted(({"range": k, "ms_per_step": us / steps / 1000, "share": us / total_us, "calls_per_step": n / steps}
                   for k, (us, n) in owned.items()), key=lambda r: -r["ms_per_step"])
    stages = {stage: sum(r["ms_per_step"] for r in rows if any(name in r["range"] for name in names))
              for stage, names in STAGES.items()}
    stages["framework (the rest)"] = window.wall * 1000 / steps - sum(stages.values())
    return {"side": side, "steps": steps, "ms_per_step": window.wall * 1000 / steps, "stages": stages,
            "top": rows[:top]}


# --- rendering ----------------------------------------------------------------------------------------------------
def ms(values: dict) -> str:
    """``median (min–max; IQR q1–q3)`` in ms of a ``spread`` of seconds."""
    return (f"{1000 * values['median']:.2f} ({1000 * values['min']:.2f}–{1000 * values['max']:.2f}; "
            f"IQR {1000 * values['q1']:.2f}–{1000 * values['q3']:.2f})")


def table(result: dict) -> str:
    """The markdown section of a record (``--report`` rebuilds it from the saved record, byte for byte)."""
    goal_ms = result["goal_ms"]
    timed = ("Each configuration: {repeats} repeats of {steps} timed steps after {warmup} warm-up steps per side, the "
             "sides' order rotated every repeat. A step is the interval between two step starts, so it includes "
             "loading the next batch: the digits DataModule's train loader (per-sample seeded crops, num_workers 0), "
             "as a real run has it, on every side. Every side trains a copy of the same module with AdamW over its "
             "parameter groups and its warm-up + cosine schedule. `loop`: a hand-written torch loop; `bare`: build's "
             "Trainer with `{bare}`; `as_run`: the Trainer, default callbacks, TensorBoard logger and progress bar "
             "(drawn to {stdout}) as `python -m transferlab.run` builds them; validation off in both "
             "(`{validation}`). Overhead: the median of the per-repeat differences to `loop`, its distribution-free "
             "interval (order statistics, coverage ≥ 95%, shown) and min–max; the goal is met when that interval "
             "lies at or below it, not met when above, and not resolved when it straddles it. CPU: the "
             "process's CPU time per step (all its threads), median over repeats, then the median per-repeat "
             "overhead in CPU time; it depends less than wall time on other processes' load.")
    lines = [header(result, timed.format(repeats=result["repeats"], steps=result["steps"], warmup=result["warmup"],
                                         bare=" ".join(result["bare"]), stdout=result["stdout"],
                                         validation=result["validation"])), ""]
    for row in result["rows"]:
        lines += [f"**{row['model']}, {row['image_size']} px, batch {row['batch']}, {row['precision']}, "
                  f"channels_last {row['channels_last']}, compile {row['compile']}** ({row['device']}; "
                  f"deterministic {row['deterministic']}; {row['batches_per_epoch']} batches per epoch):", "",
                  "| side | ms/step: median (min–max; IQR) | img/s | overhead ms/step: median (CI; min–max) | goal ≤ "
                  f"{goal_ms:g} ms/step | CPU ms/step; overhead |", "| --- | --- | --- | --- | --- | --- |"]
        for side in result["sides"]:
            stats, over = row["sides"][side], row["overhead_ms"].get(side)
            interval = None if over is None else median_interval(over["per_repeat"])
            cost = "—" if over is None else (
                f"{over['median']:.2f} (" + ("" if interval is None else
                                             f"{100 * interval[2]:.0f}% CI {interval[0]:.2f}–{interval[1]:.2f}; ")
                + f"min–max {over['min']:.2f}–{over['max']:.2f})")
            goal = "—" if over is None or result["quick"] else verdict(interval, goal_ms)
            used = f"{1000 * stats['cpu_median']:.2f}" + ("" if over is None else f"; {over['cpu_median']:.2f}")
            lines.append(f"| {side} | {ms(stats)} | {stats['img_s']:.1f} | {cost} | {goal} | {used} |")
        lines.append("")
    profile = result.get("profile")
    if profile:
        stages = "; ".join(f"{name} {value:.2f}" for name, value in profile["stages"].items())
        lines += [f"Profile of `{profile['side']}` (first configuration): {profile['steps']} steps under "
                  f"`torch.profiler`, {profile['ms_per_step']:.1f} ms/step with the profiler's own cost (which "
                  "falls mostly on the framework's many short ranges and operators). Per step, "
                  f"ms: {stages}. Top ranges: each counts its own operators and Python, not its sub-ranges; "
                  "`[...]` are Lightning's actions (hooks, the batch fetch, the training batch), `transferlab.*` "
                  "the module's parts of the step, `Lightning.log` its `self.log` calls, `Optimizer.*` torch's.", "",
                  "| range | ms/step | share | calls/step |", "| --- | --- | --- | --- |"]
        lines += [f"| `{r['range']}` | {r['ms_per_step']:.2f} | {100 * r['share']:.1f}% | {r['calls_per_step']:.1f} |"
                  for r in profile["top"]]
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (torch.set_num_threads), default 1")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per side and repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=15, help="repeats of the three sides, order rotated")
    parser.add_argument("--profile", action="store_true", help="also profile the as_run side (torch.profiler)")
    parser.add_argument("--top", type=int, default=20, help="profile entries kept")
    parser.add_argument("--quick", action="store_true", help="CPU, 16 px, batch 4, few steps: a smoke run")
    add_out_argument(parser, NAME)
    add_record_arguments(parser, NAME)
    args = parser.parse_args(argv)
    if args.profile and args.warmup < 1:
        parser.error("--profile needs --warmup 1 or more (the profiler starts one step before the timed ones)")
    result = republish(NAME, args, table)
    if result is not None:
        return result
    torch.set_num_threads(args.threads)
    out = fresh_out(NAME, args.out)
    device = torch.device("cuda" if args.config == "gpu" else "cpu")
    specs = CONFIGS[args.config]
    if args.quick:
        specs, device, args.steps, args.warmup, args.repeats = QUICK, torch.device("cpu"), 3, 1, 3
    rows = [measure(spec, args, out / f"{i}_{spec[0]}", device) for i, spec in enumerate(specs)]
    result = {**machine(NAME, argv), "environment": environment(), "config": "quick" if args.quick else args.config,
              "quick": args.quick, "repeats": args.repeats, "steps": args.steps, "warmup": args.warmup,
              "validation": VALIDATION, "bare": BARE, "sides": list(SIDES), "goal_ms": GOAL_MS,
              "stdout": "a terminal" if sys.stdout.isatty() else "no terminal", "rows": rows, "profile": None}
    if args.profile:
        spec = specs[0]
        base_cfg = load_config(overrides(spec, args.threads, args.warmup + args.steps + 1, "bare"),
                               output_dir=out / "profile_base")
        _, _, base, _ = build(base_cfg)
        result["profile"] = profile_side(spec, "as_run", base, args, out / "profile", args.top)
    text = table(result)
    report(out, result, [text], echo=False)
    publish(NAME, result, text, args.record, args.write_results)
    return result


if __name__ == "__main__":
    cli(main)
