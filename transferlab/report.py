"""What a finished run says: a short table on the console and in ``run.log``, and metrics.json's leading keys."""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("transferlab")


def best_epoch(checkpoint: str | None) -> int | None:
    """The epoch in a best checkpoint's name (``best-epoch004.ckpt`` -> 4), or None."""
    match = re.search(r"epoch(\d+)", Path(checkpoint).name) if checkpoint else None
    return int(match.group(1)) if match else None


def headline(payload: dict) -> dict:
    """``status``, ``test`` (every ``test/*`` metric) and ``best`` (monitor, value, epoch, checkpoint) first, then
    the rest of ``payload``: the keys a reader looks for open metrics.json."""
    metrics = payload.get("metrics", {})
    lead = {"status": payload.get("status"),
            "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
            "best": {"monitor": payload.get("monitor"), "value": payload.get("monitor_value"),
                     "epoch": best_epoch(payload.get("best_model_path")),
                     "checkpoint": payload.get("best_model_path") or None}}
    return {**lead, **{k: v for k, v in payload.items() if k not in lead}}


def summary(payload: dict, run_dir: str | Path) -> str:
    """The end-of-run table: best validation value and its epoch, test metrics, wall time, run folder."""
    best, test = payload["best"], payload["test"]
    rows = [("status", payload["status"])]
    if best["value"] is not None:
        epoch = f" (epoch {best['epoch']})" if best["epoch"] is not None else ""
        rows.append((f"best {best['monitor']}", f"{best['value']:.4f}{epoch}"))
    rows += [(name, f"{value:.4f}") for name, value in test.items() if name.endswith(("acc", "loss"))
             and isinstance(value, float)]
    rows += [("wall time", f"{payload.get('seconds', 0):.1f} s"), ("run folder", str(run_dir))]
    if payload.get("error"):
        rows.append(("error", payload["error"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def announce(payload: dict, run_dir: str | Path) -> None:
    """Log the summary (Hydra's job logging puts it on the console and in ``<run dir>/run.log``); print it where no
    logging is configured (a notebook calling ``transferlab.experiment.train``)."""
    text = f"run {payload['status']}\n{summary(payload, run_dir)}"
    if logging.getLogger().handlers or log.handlers:
        log.info(text)
    else:
        print(text)
