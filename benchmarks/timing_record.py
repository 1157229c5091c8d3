"""What the timing benchmarks (``strategy_cost``, ``multitask_cost``, ``probe_sweep``) keep in their records and how
their sections of RESULTS.md begin: the machine and command, and a median with its spread over repeats.

Everything a section shows is read from the record, so ``--report FILE`` rebuilds it byte for byte.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime

import torch
from common import versions
from protocol import code_version

from transferlab.threads import available_cpus, cpu_model


def positive(text: str) -> int:
    """An argparse type: an integer >= 1 (``--threads``, ``--repeats``)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def command(script: str, argv: Sequence[str] | None) -> str:
    """The command line that ran ``benchmarks/<script>.py`` with ``argv`` (default ``sys.argv[1:]``)."""
    return shlex.join(["python", f"benchmarks/{script}.py", *(sys.argv[1:] if argv is None else argv)])


def machine(script: str, argv: Sequence[str] | None) -> dict:
    """Date, CPU, CPUs available, GPU (None without CUDA), intra-op threads in use, versions, the code measured (its
    commit, ``+`` when ``transferlab/`` had changes) and the command."""
    return {"date": datetime.now().strftime("%Y-%m-%d"), "cpu": cpu_model(), "cpus_available": available_cpus(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(), "versions": versions(), "code": code_version(),
            "command": command(script, argv)}


def header(result: dict, timed: str) -> str:
    """The line above a section's table: when, where and how it was measured (``timed``: what the figures are)."""
    gpu = f", GPU {result['gpu']}" if result.get("gpu") else ""
    quick = " A --quick smoke run: its figures measure nothing, and no goal is judged." if result["quick"] else ""
    return (f"Measured {result['date']} on {result['cpu']} ({result['cpus_available']} CPUs available{gpu}), "
            f"{result['threads']} intra-op thread(s), {result['versions']}"
            f"{', code ' + result['code'] if result.get('code') else ''}, by `{result['command']}`. "
            f"{timed}{quick}")


def spread(values: Sequence[float], digits: int) -> str:
    """``median (min–max)`` of ``values``, or the one value when there is one (or all are equal)."""
    low, high = min(values), max(values)
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 or low == high else f"{middle} ({low:.{digits}f}–{high:.{digits}f})"


def judged(result: dict, met: bool, goal: str) -> str:
    """The goal column: the goal and whether the figure meets it (not judged for a ``--quick`` run)."""
    return f"{goal} (quick run: not judged)" if result["quick"] else f"{goal}: {'met' if met else '**not met**'}"


def ratio_spread(ratio: float, per_repeat: Sequence[float], digits: int) -> str:
    """``ratio×`` with the min–max of the per-repeat ratios (the repeats are paired: timed side by side)."""
    text = f"{ratio:.{digits}f}×"
    if len(per_repeat) > 1:
        text += f" ({min(per_repeat):.{digits}f}–{max(per_repeat):.{digits}f}× per repeat)"
    return text


def ratio_table(result: dict, timed: str, column: str, variants: Sequence[str], ratio: tuple[str, str, float],
                digits: tuple[int, int]) -> str:
    """A cost section: the header, one row per variant (median ms/step, min–max over the repeats) and the ratio row
    ``(numerator, denominator, ratio of the medians)`` judged against ``result["goal_ratio_max"]``; ``digits``: of
    the ms and of the ratio."""
    seconds, n, goal = result["seconds_per_step"], result["repeats"], result["goal_ratio_max"]
    over, under, value = ratio
    per_repeat = [a / b for a, b in zip(seconds[over], seconds[under])]
    lines = [header(result, timed), "", f"| {column} | ms/step: median (min–max of {n}) | goal |", "|---|---|---|",
             *(f"| {v} | {spread([1000 * t for t in seconds[v]], digits[0])} |  |" for v in variants),
             f"| {over} / {under} | {ratio_spread(value, per_repeat, digits[1])} | "
             f"{judged(result, value <= goal, f'≤ {goal}×')} |"]
    return "\n".join(lines)
