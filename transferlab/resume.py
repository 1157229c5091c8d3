"""``resume=auto``: find the newest ``last.ckpt`` of an earlier run launched with the same overrides."""

from __future__ import annotations

from pathlib import Path

import yaml

from transferlab.contracts.errors import TransferlabError


def comparable(overrides) -> list[str]:
    """Command-line overrides as a sorted list, without ``resume=...`` (the one thing a resume changes)."""
    return sorted(str(o) for o in overrides if not str(o).lstrip("+~").startswith("resume="))


def find_last_checkpoint(log_dir: str | Path, overrides, exclude: str | Path | None = None) -> Path:
    """The newest ``<log_dir>/runs/*/checkpoints/last.ckpt`` whose ``.hydra/overrides.yaml`` equals ``overrides``.

    Overrides compare as sorted lists ignoring ``resume=``; the run folder ``exclude`` (this run's) is skipped.

    Raises:
        TransferlabError: no such checkpoint: ``auto`` never silently starts from scratch.
    """
    wanted = comparable(overrides)
    exclude = Path(exclude).resolve() if exclude else None
    found = []
    for record in Path(log_dir).glob("runs/*/.hydra/overrides.yaml"):
        run = record.parent.parent
        last = run / "checkpoints" / "last.ckpt"
        if run.resolve() == exclude or not last.is_file():
            continue
        if comparable(yaml.safe_load(record.read_text()) or []) == wanted:
            found.append(last)
    if not found:
        shown = " ".join(wanted) or "(no overrides)"
        raise TransferlabError(f"resume=auto: no checkpoints/last.ckpt under {Path(log_dir) / 'runs'} from a run "
                               f"with the overrides {shown}; give resume=<path> or start without resume")
    return max(found, key=lambda p: p.stat().st_mtime)
