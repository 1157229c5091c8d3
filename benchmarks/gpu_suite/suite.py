"""One run of the suite: set up the device, run every chosen part within its budget, and rewrite the results file
after each part, so a run that is stopped (SIGTERM, Ctrl-C) still leaves what it measured."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import torch

from transferlab.quiet import silence_noise

from .budget import SuiteEnv, Terminated, run_part
from .goals import GOALS, goal_rows, peak_tflops
from .record import RESULT_MD, describe_device, describe_versions, write
from .sections import PARTS
from .settings import dry_settings, gpu_settings

WEIGHTS = ("random init (model.weights=none) for every model: throughput does not depend on weight values; nothing "
           "is downloaded")


def prepare_device(dry_run: bool) -> torch.device:
    """The CPU for a dry run, else the GPU with cuDNN autotuning, TF32 matmuls and its context made (outside every
    part's budget); library noise silenced."""
    silence_noise()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    device = torch.device("cpu" if dry_run else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        torch.zeros(1, device=device)
    return device


def peak_for(args: argparse.Namespace, device_name: str) -> tuple[float | None, str]:
    """The dense bf16 peak for MFU and where it comes from: ``--peak-tflops``, the table, or none."""
    if args.peak_tflops is not None:
        return args.peak_tflops, "--peak-tflops"
    if args.dry_run:
        return None, "not applicable: dry run on the CPU"
    peak = peak_tflops(device_name)
    if peak is None:
        return None, f"unknown device {device_name!r}: MFU recorded as null (pass --peak-tflops)"
    return peak, f"table entry matching {device_name!r}"


def new_results(args: argparse.Namespace, sections: tuple[str, ...], out: Path, argv: list[str],
                started: datetime.datetime, device: torch.device, settings: dict) -> dict:
    """The results file before any part has run: what, where, on what and with which versions."""
    dev = describe_device(device)
    peak, peak_source = peak_for(args, dev["name"])
    results = {"suite": "transferlab gpu_suite", "schema": 1, "dry_run": args.dry_run, "complete": False,
               "stopped": "running", "started": started.isoformat(timespec="seconds"),
               "command": " ".join(["bash benchmarks/gpu_suite.sh", *argv]), "out": str(out), "device": dev,
               "versions": describe_versions(), "peak_tflops": peak, "peak_source": peak_source, "weights": WEIGHTS,
               "settings": settings, "goals_spec": GOALS, "sections": list(sections), "parts": {}, "goals": []}
    results["goals"] = goal_rows(results)
    return results


def _on_term(signum, frame):
    raise Terminated


def run(args: argparse.Namespace, sections: tuple[str, ...], out: Path, argv: list[str],
        started: datetime.datetime, wall_start: float) -> int:
    """Run the chosen ``sections`` into ``out`` (already claimed); returns the exit code (143 after SIGTERM, 130
    after Ctrl-C, else 0: a failed part is recorded, not an exit code)."""
    device = prepare_device(args.dry_run)
    settings = dry_settings() if args.dry_run else gpu_settings(os.cpu_count() or 1)
    results = new_results(args, sections, out, argv, started, device, settings)
    write(out, results)
    print(f"gpu_suite: {'DRY RUN on the CPU, ' if args.dry_run else ''}{results['device']['name']}; models random "
          f"init (model.weights=none, no downloads); writing {out}", flush=True)
    signal.signal(signal.SIGTERM, _on_term)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    env = SuiteEnv(settings, device, args.dry_run, results["peak_tflops"], scratch)
    code = 0
    try:
        for name, fn in PARTS:
            if name.split("/")[0] not in sections:
                continue
            run_part(name, fn, settings["budgets"][name] * args.budget_scale, env, results)
            results["goals"] = goal_rows(results)
            results["wall_s"] = round(time.perf_counter() - wall_start, 1)
            write(out, results)
        results["complete"], results["stopped"] = True, None
    except (Terminated, KeyboardInterrupt, SystemExit) as err:  # SIGTERM (the wrapper's cap; Lightning's own
        # handler raises a SystemExit during fit), Ctrl-C: what was measured is written below
        why = "SIGTERM" if isinstance(err, Terminated) or "SIGTERM" in type(err).__name__ else type(err).__name__
        results["stopped"] = f"{why} after {time.perf_counter() - wall_start:.0f} s; parts not listed did not run"
        code = 130 if isinstance(err, KeyboardInterrupt) else 143
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        results["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        results["wall_s"] = round(time.perf_counter() - wall_start, 1)
        results["goals"] = goal_rows(results)
        write(out, results)
    failed = [k for k, v in results["parts"].items() if v["status"] in ("error", "timeout")]
    print(f"gpu_suite: {'complete' if results['complete'] else 'stopped'} in {results['wall_s']:.0f} s"
          + (f"; not ok: {', '.join(failed)}" if failed else "") + f"; results: {out / RESULT_MD}", flush=True)
    return code
