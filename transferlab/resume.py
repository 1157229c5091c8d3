"""Continuing earlier work: ``resume=auto`` (the newest ``last.ckpt`` of a run launched with the same overrides) and,
in a multirun, ``sweep_resume`` (a job that completed in an earlier sweep is not run again; one interrupted there
continues from its ``last.ckpt``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from transferlab.contracts.errors import TransferlabError

IGNORED = ("resume=", "sweep_resume=")  # overrides that change how a job starts, never what it computes


def comparable(overrides) -> list[str]:
    """Command-line overrides as a sorted list, without ``resume=...``/``sweep_resume=...``."""
    return sorted(str(o) for o in overrides if not str(o).lstrip("+~").startswith(IGNORED))


def same_overrides(run: Path, wanted: list[str]) -> bool:
    """Whether the run folder ``run`` was launched with the overrides ``wanted`` (as ``comparable`` gives them)."""
    record = run / ".hydra" / "overrides.yaml"
    try:
        return record.is_file() and comparable(yaml.safe_load(record.read_text()) or []) == wanted
    except (OSError, yaml.YAMLError):
        return False


def find_last_checkpoint(log_dir: str | Path, overrides, exclude: str | Path | None = None) -> Path:
    """The newest ``last.ckpt`` of a run or sweep job under ``log_dir`` (``runs/*``, ``sweeps/*/*``) whose
    ``.hydra/overrides.yaml`` equals ``overrides``, compared as sorted lists without ``resume=``; the run folder
    ``exclude`` (this run's) is skipped.

    Raises:
        TransferlabError: no such checkpoint: ``auto`` never silently starts from scratch.
    """
    wanted = comparable(overrides)
    exclude = Path(exclude).resolve() if exclude else None
    found = [run / "checkpoints" / "last.ckpt" for pattern in ("runs/*", "sweeps/*/*")
             for run in Path(log_dir).glob(pattern)
             if run.resolve() != exclude and (run / "checkpoints" / "last.ckpt").is_file()
             and same_overrides(run, wanted)]
    if not found:
        shown = " ".join(wanted) or "(no overrides)"
        raise TransferlabError(f"resume=auto: no checkpoints/last.ckpt under {Path(log_dir) / 'runs'} or "
                               f"{Path(log_dir) / 'sweeps'} from a run with the overrides {shown}; give "
                               "resume=<path> or start without resume")
    return max(found, key=lambda p: p.stat().st_mtime)


@dataclass
class EarlierJob:
    """A sweep job's earlier attempt: its folder, its metrics.json payload when it completed, else its last.ckpt."""

    folder: Path
    completed: dict | None = None
    last: Path | None = None


def _completed(folder: Path) -> dict | None:
    try:
        payload = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("status") == "completed" else None


def earlier_sweep_job(log_dir: str | Path, output_dir: str | Path, overrides) -> EarlierJob | None:
    """The earlier attempt of this sweep job: a job folder with the same overrides under ``<log_dir>/sweeps/*/`` or
    beside ``output_dir`` (a fixed ``hydra.sweep.dir``; ``output_dir`` itself counts), newest first. A completed
    attempt wins over an interrupted one with a ``last.ckpt``; None when there is neither."""
    wanted = comparable(overrides)
    output_dir = Path(output_dir)
    folders = {p.resolve(): p for p in [*Path(log_dir).glob("sweeps/*/*"), *output_dir.parent.glob("*")]
               if p.is_dir() and same_overrides(p, wanted)}
    completed = [(f / "metrics.json", payload) for f in folders.values() if (payload := _completed(f)) is not None]
    if completed:
        record, payload = max(completed, key=lambda item: item[0].stat().st_mtime)
        return EarlierJob(record.parent, completed=payload)
    lasts = [f / "checkpoints" / "last.ckpt" for f in folders.values() if (f / "checkpoints" / "last.ckpt").is_file()]
    if lasts:
        last = max(lasts, key=lambda path: path.stat().st_mtime)
        return EarlierJob(last.parent.parent, last=last)
    return None
