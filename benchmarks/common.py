"""Shared pieces of the benchmark scripts: device description, synchronised timing, a Lightning step timer."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch


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
    import lightning
    return f"torch {torch.__version__}, lightning {lightning.__version__}"


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


def report(out, rows, lines: list[str]) -> None:
    """Print the markdown ``lines`` and keep them, with the raw ``rows``, as ``out/result.md`` and
    ``out/result.json``."""
    import json
    from pathlib import Path

    text = "\n".join(lines)
    print(text)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(rows, indent=2))
    (out / "result.md").write_text(text + "\n")
