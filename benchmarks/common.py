"""Shared pieces of the benchmark scripts: their output folder, how they start and report, device description,
synchronised timing, a Lightning step timer.

Every script writes into one folder of its own (``fresh_out``, from ``out_folder``): ``--out DIR`` if given, else a
new timestamped ``outputs/benchmarks/<name>/<YYYYmmdd-HHMMSS-ffffff>``, so a benchmark re-runs as it is and never
needs cleaning up. A folder that holds anything already is refused, before any work, with one line (``cli``).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # this checkout's transferlab (whichever copy is installed), out_folder
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from out_folder import COMMAND_FILE, add_out_argument, check_unused, fresh_out, outputs_root  # noqa: E402, F401
from protocol import add_record_arguments, cli, load_record, publish, republish  # noqa: E402, F401

from transferlab.atomic import write_text  # noqa: E402


def device_name(device: torch.device) -> str:
    """What the figures were measured on: the GPU's name, or the CPU model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if platform.system() != "Linux":
        return f"{platform.processor()}, {torch.get_num_threads()} threads"
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor())
    return f"{model}, {torch.get_num_threads()} threads"


def versions() -> str:
    """``torch …, lightning …, timm …`` (``transferlab.threads.versions_line``), the same in every benchmark."""
    from transferlab.threads import versions_line

    return versions_line()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """``perf_counter`` after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


class StepTimer(L.Callback):
    """Wall time of the training steps after ``warmup`` steps, measured at batch boundaries (device synced)."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.end, self.steps = now(pl_module.device), self.steps + 1

    @property
    def seconds_per_step(self) -> float:
        return (self.end - self.start) / self.steps


def median(values) -> float:
    return statistics.median(values)


def report(out, rows, lines: list[str], echo: bool = True) -> None:
    """Print the markdown ``lines`` (unless ``echo`` is false: ``protocol.publish`` prints them) and keep them, with
    the raw ``rows``, as ``out/result.md`` and ``out/result.json`` (each written atomically: a reader sees no file or
    the whole one)."""
    text = "\n".join(lines)
    if echo:
        print(text)
    out = Path(out)
    write_text(out / "result.json", json.dumps(rows, indent=2) + "\n")
    write_text(out / "result.md", text + "\n")
    print(f"results: {out}")
