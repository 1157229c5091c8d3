"""Time budgets: each part of the suite runs within its own, and its entry is recorded whatever happens to it."""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from transferlab.contracts.errors import one_line

FIGURES = ("lightning_img_s", "loop_img_s", "img_s", "loader_img_s", "ms_per_step")  # a part's measured keys


class PartTimeout(BaseException):
    """Raised by SIGALRM when a part reaches its budget (a BaseException: library code must not swallow it)."""


class Terminated(BaseException):
    """SIGTERM (the wrapper's hard cap, or a user): write what was measured and stop."""


class Skipped(Exception):
    """A part that does not apply in this mode (compile in --dry-run)."""


@dataclass(frozen=True)
class SuiteEnv:
    """What every part is given: the sizes, the device, the mode, the peak for MFU and a scratch folder."""

    settings: dict
    device: torch.device
    dry_run: bool
    peak_tflops: float | None
    scratch: Path


class Part:
    """One timed part: its deadline, scratch folders, and ``record`` (kept even when the part fails)."""

    def __init__(self, name: str, budget: float, scratch: Path):
        self.name, self.budget, self.scratch_root = name, budget, scratch
        self.deadline = time.perf_counter() + budget
        self.record: dict = {}
        self._scratch_count = 0

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def scratch(self, tag: str) -> Path:
        """A new folder name under the suite's scratch folder, for a transferlab run's output."""
        self._scratch_count += 1
        return self.scratch_root / f"{self.name.replace('/', '_')}_{self._scratch_count:02d}_{tag}"

    def repeats(self, wanted: int, minimum: int = 1) -> Iterator[int]:
        """Repeat indices while the budget allows another (estimated from the last repeat's duration); a cut is
        noted in ``record["truncated"]``."""
        last = 0.0
        for r in range(wanted):
            if r >= minimum and self.left() < 1.2 * last + 0.5:
                self.record["truncated"] = (f"{r} of {wanted} repeats: stopped to stay within the "
                                            f"{self.budget:.0f} s budget")
                return
            start = time.perf_counter()
            yield r
            last = time.perf_counter() - start
        self.record.pop("truncated", None)

    def interleaved(self, wanted: int, sides: tuple[str, str]) -> Iterator[str]:
        """Both ``sides`` once per repeat, in alternating order, while the budget allows (see ``repeats``)."""
        for r in self.repeats(wanted):
            yield from (sides if r % 2 == 0 else sides[::-1])


def _on_alarm(signum, frame):
    raise PartTimeout


def run_part(name: str, fn: Callable[[Part, SuiteEnv], None], budget: float, env: SuiteEnv, results: dict) -> None:
    """Run ``fn`` within ``budget`` seconds and put its entry in ``results["parts"][name]``, whatever happens.

    A failure or a timeout is recorded (with the figures of the repeats it finished) and the suite goes on; SIGTERM
    and Ctrl-C record the part as stopped and propagate.
    """
    part = Part(name, budget, env.scratch)
    print(f"gpu_suite: {name} (budget {budget:.0f} s) ...", flush=True)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(budget, 0.1))  # (0 would switch the alarm off)
    start = time.perf_counter()
    status: dict = {"status": "stopped", "error": "the suite was stopped during this part"}
    try:
        fn(part, env)
        status = {"status": "ok"}
    except PartTimeout:
        status = {"status": "timeout", "error": f"stopped at its {budget:.0f} s budget"}
    except Skipped as reason:
        status = {"status": "skipped", "reason": str(reason)}
    except Exception as err:  # recorded; the other parts still run
        status = {"status": "error", "error": f"{type(err).__name__}: {one_line(err)}"[:400]}
    finally:  # also on SIGTERM or Ctrl-C, which go on to stop the suite
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        entry = {**status, "seconds": round(time.perf_counter() - start, 2), "budget_s": budget, **part.record}
        if status["status"] in ("timeout", "stopped") and any(k in part.record for k in FIGURES):
            entry["error"] += " (the figures of the repeats it finished are kept)"
        results["parts"][name] = entry
    if env.device.type == "cuda":  # (a full collection costs about 0.5 s on a small CPU: only where it matters)
        gc.collect()
        torch.cuda.empty_cache()
    print(f"gpu_suite: {name}: {entry['status']} in {entry['seconds']:.1f} s"
          + (f": {entry.get('error') or entry.get('reason')}" if entry["status"] != "ok" else ""), flush=True)
