"""The results file: what the figures were measured on (device, versions) and its writing as JSON and markdown."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import torch
from common import ROOT, device_name

from transferlab.atomic import write_text
from transferlab.threads import package_versions

from .render import render

RESULT_JSON, RESULT_MD = "results.json", "results.md"


def clean(value):
    """Strict JSON: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write(out: Path, results: dict) -> None:
    """``results.json`` and its rendering ``results.md`` into ``out``, each written whole (atomically)."""
    results = clean(results)
    write_text(out / RESULT_JSON, json.dumps(results, indent=2, allow_nan=False))
    write_text(out / RESULT_MD, render(results))


def shell_line(cmd: list[str]) -> str | None:
    """``cmd``'s stripped stdout; None when it fails, prints nothing or takes over 15 s."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe_device(device: torch.device) -> dict:
    """The GPU's name, capability, memory and ``nvidia-smi`` line; on the CPU, its model marked as a dry run."""
    if device.type != "cuda":
        return {"name": f"CPU: {device_name(device)} (dry run)", "nvidia_smi": None}
    props = torch.cuda.get_device_properties(device)
    return {"name": device_name(device), "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "nvidia_smi": shell_line(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit,"
                                      "clocks.max.sm,mig.mode.current", "--format=csv,noheader"])}


def describe_versions() -> dict:
    """Python, torch, CUDA, cuDNN, Lightning, torchvision, timm (when installed) and this checkout's commit."""
    out = {**package_versions(("torch", "torchvision", "lightning", "timm")), "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version()}
    commit = shell_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if commit:
        dirty = shell_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
        out["transferlab"] = commit + (" (with uncommitted changes)" if dirty else "")
    return out
