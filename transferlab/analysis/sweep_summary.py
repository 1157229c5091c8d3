"""Summarise a Hydra multirun folder: ``summary.csv``, ``summary.md`` and a heatmap / bar / parallel-coordinates chart.

    python -m transferlab.analysis.sweep_summary outputs/sweeps/<timestamp> [--metric val/acc] [--mode max]

Jobs are ranked by the runs' own ``monitor`` (a validation metric: what checkpoints and sweepers optimise), never
by a test metric by default: test columns are the outcome of that choice, not a criterion for it.

Each job folder (``<sweep>/<hydra.job.num>/``) holds ``.hydra/overrides.yaml`` and ``metrics.json``
(written by ``transferlab.run``). A sweep over seeds (``-m seed=0,1,2,3,4 ...``) is also summarised per
configuration (``sweep_configs``): mean ± std, 95% CI and n, the best mean chosen, test figures for it only.
Only ``summary.csv`` (every job), ``summary_by_config.csv`` (seeds), ``summary.md``, ``heatmap.png`` (two swept
parameters besides the seed), ``bar.png`` (one, or only seeds), ``parallel.png`` (more) and ``tensorboard/`` (the
same figures) are ever written in the sweep folder; nothing else there is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from transferlab.analysis.sweep_configs import (
    chart_title,
    choice_text,
    config_chart,
    config_keys,
    csv_columns,
    figure,
    group_configs,
    is_seed_sweep,
    table_rows,
    value_key,
)
from transferlab.atomic import atomic_open, save_figure, write_text
from transferlab.contracts.errors import TransferlabError, print_error
from transferlab.entry import run_script

log = logging.getLogger(__name__)
STATUS_RANK = {"completed": 0, "failed": 1, "missing": 2}
HEADLINE = ("test/", "val/", "train/loss", "train/acc")  # metric columns of summary.md (summary.csv has them all)


def _job_key(path: Path) -> tuple:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def _read_job(job_dir: Path, metric: str) -> tuple[dict, dict]:
    """``(overrides, row)`` for one job folder; never raises on a damaged job."""
    overrides, row = {}, {"job": job_dir.name}
    try:
        for item in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []:
            key, sep, value = str(item).partition("=")
            overrides[key.lstrip("+~")] = value if sep else "<deleted>"
    except (OSError, yaml.YAMLError):
        pass
    try:
        payload = json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        row["status"] = "missing"
        if (job_dir / "metrics.json").exists():
            row["error"] = f"unreadable metrics.json: {err}"
        return overrides, row
    row["status"] = str(payload.get("status", "missing"))
    for key, value in (payload.get("metrics") or {}).items():
        with contextlib.suppress(TypeError, ValueError):  # a non-numeric entry is no metric column
            row[key] = float(value)
    if metric not in row and payload.get("monitor") == metric and payload.get("monitor_value") is not None:
        row[metric] = float(payload["monitor_value"])
    if payload.get("seconds") is not None:
        row["seconds"] = float(payload["seconds"])
    if payload.get("error"):
        row["error"] = str(payload["error"])
    return overrides, row


def _monitor(sweep: Path, jobs: list[Path]) -> tuple[str, str]:
    """The monitored metric and its mode, as the jobs' metrics.json record them (``val/acc``, max if none does)."""
    for job in jobs:
        try:
            payload = json.loads((job / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if payload.get("monitor"):
            return str(payload["monitor"]), str(payload.get("monitor_mode") or "max")
    return "val/acc", "max"


def _sort_key(row: dict, metric: str, mode: str) -> tuple:
    value = row.get(metric)
    finite = isinstance(value, float) and math.isfinite(value)
    rank = STATUS_RANK.get(row["status"], 1) if row["status"] != "completed" or finite else 0.5
    return (rank, (-value if mode == "max" else value) if finite else 0.0)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _finite_rows(rows: list[dict], metric: str) -> list[dict]:
    return [row for row in rows if row["status"] == "completed" and isinstance(row.get(metric), float)
            and math.isfinite(row[metric])]


def parallel_coordinates(rows: list[dict], keys: list[str], metric: str, mode: str, chosen: dict | None = None,
                         title: str | None = None):
    """One line per completed row across an axis per swept key and one for ``metric``, coloured by ``metric``;
    ``chosen`` (one of ``rows``) drawn in red and named in the legend."""
    done = _finite_rows(rows, metric)
    axes_values = [sorted({row.get(k, "") for row in rows}, key=value_key) for k in keys]
    fig = figure(max(6.0, 1.8 * (len(keys) + 1)), 4.0)
    ax = fig.add_subplot()
    values = [row[metric] for row in done]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    cmap = __import__("matplotlib").colormaps["viridis"]
    for row in sorted(done, key=lambda r: r[metric] if mode == "max" else -r[metric]):  # best drawn last
        ys = [axes_values[i].index(row.get(k, "")) / max(len(axes_values[i]) - 1, 1) for i, k in enumerate(keys)]
        score = (row[metric] - low) / span
        ax.plot(range(len(keys) + 1), ys + [score], color=cmap(score if mode == "max" else 1 - score), alpha=0.8)
        if row is chosen:
            ax.plot(range(len(keys) + 1), ys + [score], color="red", linewidth=3, zorder=3,
                    label=f"chosen (best {metric}, {mode})")
    for i, choices in enumerate(axes_values):
        for j, choice in enumerate(choices):
            ax.annotate(str(choice), (i, j / max(len(choices) - 1, 1)), fontsize=8, ha="right",
                        xytext=(-3, 0), textcoords="offset points")
    ax.annotate(f"{high:.4g}", (len(keys), 1.0), fontsize=8, xytext=(3, 0), textcoords="offset points")
    ax.annotate(f"{low:.4g}", (len(keys), 0.0), fontsize=8, xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(keys) + 1), [*keys, metric], rotation=15)
    ax.set_yticks([])
    for x in range(len(keys) + 1):
        ax.axvline(x, color="grey", linewidth=0.8)
    ax.set_title(title or f"{metric} over {len(keys)} swept parameters ({mode}; {len(done)} completed jobs)")
    if chosen is not None and chosen in done:
        fig.legend(loc="outside lower center", frameon=False)
    return fig


def summarize(sweep_dir: str | Path, metric: str | None = None, mode: str | None = None,
              echo: bool = True) -> list[dict]:
    """Collect every job of a sweep into one table, sorted by ``metric``, and write it next to the jobs.

    A sweep over seeds (``seed`` varies, or jobs share a configuration) is also summarised per configuration
    (``summary_by_config.csv``, ``sweep_configs``): mean ± std, 95% CI and n, the best mean chosen.

    Args:
        sweep_dir: The multirun folder (``hydra.sweep.dir``) whose direct subfolders are jobs.
        metric: Metric to sort and plot by (a key of ``metrics.json``'s ``metrics``); ``None`` = the runs'
            ``monitor``. A ``test/`` metric is allowed but flagged: ranking on it selects on the test set.
        mode: ``"max"`` or ``"min"``: which end of ``metric`` is best; ``None`` = the runs' ``monitor_mode``.
        echo: Print the markdown table.

    Returns:
        One dict per job, best first (failed, then missing, last): ``job``, one column per overridden
        key (value strings), ``status``, the final metrics (floats), ``seconds`` and ``error`` if any; in a
        sweep over seeds also ``chosen`` (``"yes"`` for the jobs of the chosen configuration).

    Raises:
        ValueError: ``mode`` is neither ``"max"`` nor ``"min"``.
        FileNotFoundError: ``sweep_dir`` is not a folder.
    """
    return summarize_sweep(sweep_dir, metric, mode, echo).rows


@dataclass
class SweepResult:
    """What ``summarize_sweep`` found: per-job ``rows``, the ranking ``metric`` and ``mode``, and ``configs``
    (per configuration, best mean first, as ``sweep_configs.group_configs``; empty unless a sweep over seeds)."""

    rows: list[dict]
    metric: str
    mode: str
    configs: list[dict] = field(default_factory=list)


def summarize_sweep(sweep_dir: str | Path, metric: str | None = None, mode: str | None = None,
                    echo: bool = True) -> SweepResult:
    """``summarize``, returning the configurations of a sweep over seeds as well (see ``SweepResult``)."""
    if mode not in ("max", "min", None):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep}")
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and ((p / ".hydra" / "overrides.yaml").is_file()
                                                                  or (p / "metrics.json").is_file())), key=_job_key)
    monitor, monitor_mode = _monitor(sweep, jobs)
    metric, mode = metric or monitor, mode or (monitor_mode if (metric or monitor) == monitor else "max")
    if not jobs:
        log.warning("No job folders in %s; nothing to summarise", sweep)
        return SweepResult([], metric, mode)
    parsed = [_read_job(job, metric) for job in jobs]
    keys = list(dict.fromkeys(k for overrides, _ in parsed for k in overrides))
    rows = [{"job": row["job"], **{k: overrides.get(k, "") for k in keys}, **row} for overrides, row in parsed]
    rows.sort(key=lambda row: _sort_key(row, metric, mode))
    metric_cols = sorted({k for row in rows for k in row} - {"job", "status", "seconds", "error", *keys})
    grouped, ckeys = is_seed_sweep(rows, keys), config_keys(keys)
    configs = group_configs(rows, ckeys, metric, mode, metric_cols)
    chosen = configs[0] if configs[0]["chosen"] else None
    if grouped:
        for row in rows:
            row["chosen"] = "yes" if chosen and all(row[k] == chosen[k] for k in ckeys) else ""
    lead = ["job", *keys, "status", *(["chosen"] if grouped else [])]
    columns = [*lead, *metric_cols, "seconds"] + (["error"] if any("error" in r for r in rows) else [])
    with atomic_open(sweep / "summary.csv", "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    headline = [metric] + [k for k in metric_cols if k != metric and k.startswith(HEADLINE)
                           and not k.endswith(("_step", "_epoch"))]
    job_columns = [*lead, *headline, *columns[columns.index("seconds"):]]
    caveat = ("the runs' monitored validation metric; test columns are the outcome of this choice, not a criterion"
              if metric == monitor else "not the runs' monitor" + (": ranking on a test metric selects on the test "
                                                                     "set" if metric.startswith("test/") else ""))
    if grouped:
        with atomic_open(sweep / "summary_by_config.csv", "w") as fh:
            writer = csv.DictWriter(fh, fieldnames=csv_columns(configs, ckeys, metric, metric_cols), restval="",
                                    extrasaction="ignore")
            writer.writeheader()
            writer.writerows(configs)
        choice = choice_text(configs, metric, mode)
        by_config = markdown_table(*table_rows(configs, ckeys, metric, headline))
        table = f"{by_config}\n\n{choice}"
        shown = [row if row["chosen"] else {k: v for k, v in row.items() if k == metric or not k.startswith("test/")}
                 for row in rows]  # test figures of the other configurations stay in summary.csv
        done = sum(row["status"] == "completed" for row in rows)
        fixed = ", ".join(f"`{k}={rows[0][k]}`" for k in ckeys if len({row[k] for row in rows}) == 1)
        write_text(sweep / "summary.md", f"# Sweep summary: {sweep.name}\n\n{len(configs)} configurations over "
                   f"seeds, {len(rows)} jobs ({done} completed){'; the same in every job: ' + fixed if fixed else ''}"
                   f". Configurations are ranked by the mean of `{metric}` "
                   f"({mode}) over their seeds: {caveat}.\n\n{choice}\n\n## By configuration (mean ± std over "
                   f"seeds; every metric in summary_by_config.csv)\n\n{by_config}\n\n"
                   f"## Every job (test figures for the chosen configuration only; all in summary.csv)\n\n"
                   f"{markdown_table(shown, job_columns)}\n")
    else:
        table = markdown_table(rows, job_columns)
        write_text(sweep / "summary.md", f"# Sweep summary: {sweep.name}\n\nRanked by `{metric}` ({mode}): "
                                          f"{caveat}. Every metric is in summary.csv.\n\n{table}\n")
    _write_figures(sweep, rows, configs, [k for k in ckeys if len({row[k] for row in rows}) > 1], metric, mode,
                   grouped)
    if echo:
        print(table)
    return SweepResult(rows, metric, mode, configs if grouped else [])


def _write_figures(sweep: Path, rows: list[dict], configs: list[dict], varying: list[str], metric: str, mode: str,
                   grouped: bool) -> None:
    """``bar.png`` (one varying key, or only seeds), ``heatmap.png`` (two) or ``parallel.png`` (more), also in
    TensorBoard."""
    figures = {}
    if len(varying) in (1, 2) or (grouped and not varying):
        figures["heatmap" if len(varying) == 2 else "bar"] = config_chart(configs, varying, metric, mode, grouped)
    elif len(varying) > 2 and grouped:
        name = f"mean {metric}"  # the axis parallel_coordinates shows
        means = [{**{k: c[k] for k in varying}, "status": "completed" if c["n"] else "failed",
                  name: c[f"{metric} mean"]} for c in configs]
        figures["parallel"] = parallel_coordinates(means, varying, name, mode,
                                                   chosen=means[0] if configs[0]["chosen"] else None,
                                                   title=chart_title(metric, [], mode, configs, True, "mean"))
    elif len(varying) > 2:
        done = _finite_rows(rows, metric)
        figures["parallel"] = parallel_coordinates(rows, varying, metric, mode, chosen=done[0] if done else None)
    for name, fig in figures.items():
        save_figure(fig, sweep / f"{name}.png", dpi=100, bbox_inches="tight")
    if figures:
        _log_to_tensorboard(sweep / "tensorboard", figures)


def _log_to_tensorboard(log_dir: Path, figures: dict) -> None:
    """The summary figures as TensorBoard images (``tensorboard --logdir <sweep>``), tags ``sweep/<name>``."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for name, fig in figures.items():
            writer.add_figure(f"sweep/{name}", fig, close=False)


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep folder when a multirun ends (see ``summarize``).

    Hydra 1.3 calls ``on_multirun_end`` with the composed config, in which ``hydra.sweep.dir`` resolves
    to the folder the jobs were written to (``${now:...}`` is a cached resolver, so it yields the same
    timestamp as when the sweeper created the folder). It is only called when ``sweeper.sweep`` returns:
    the BasicSweeper re-raises the first failed job's exception after each batch, which skips
    ``on_multirun_end``. ``transferlab.run`` returns None for jobs failing with a TransferlabError, so those
    sweeps are summarised; any other job exception aborts the sweep before this hook (re-run by hand
    with the CLI). Hydra also wraps callbacks in try/except (a warning), but this one never raises anyway.
    """

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        self.metric, self.mode = metric, mode

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Write summary.csv / summary.md / heatmap.png in ``config.hydra.sweep.dir`` and print the table."""
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            result = summarize_sweep(sweep_dir, self.metric, self.mode)
            rows, metric = result.rows, result.metric
            if result.configs and result.configs[0]["chosen"]:
                best = result.configs[0]
                outcome = ", ".join(f"{k[:-5]} = {_fmt(v)} ± {_fmt(best.get(k[:-5] + ' std'))}" for k, v in
                                    best.items() if k.startswith("test/") and k.endswith(" mean")
                                    and not k[:-5].endswith(("_step", "_epoch")))
                log.info("Sweep summary of %d jobs in %s: %d configurations over seeds; chosen by the best mean %s: "
                         "%s (%s = %s ± %s, n = %d of %d); its test figures (mean ± std): %s", len(rows), sweep_dir,
                         len(result.configs), metric, best["_label"], metric, _fmt(best[f"{metric} mean"]),
                         _fmt(best[f"{metric} std"]), best["n"], best["jobs"], outcome or "none")
            elif rows:
                best = rows[0]
                outcome = ", ".join(f"{k} = {_fmt(v)}" for k, v in best.items() if k.startswith("test/")
                                    and not k.endswith(("_step", "_epoch")))
                log.info("Sweep summary of %d jobs in %s: chosen by %s, job %s (%s = %s); its test figures: %s",
                         len(rows), sweep_dir, metric, best["job"], metric, _fmt(best.get(metric)), outcome or "none")
        except Exception as err:  # a summary failure must never hide the sweep's own results
            log.warning("Sweep summary failed: %s: %s", type(err).__name__, (str(err).strip().splitlines() or [""])[0])


def summary_command(argv: list[str]) -> int:
    """``summarize`` from command-line arguments; 1 when the folder holds no job."""
    parser = argparse.ArgumentParser(prog="python -m transferlab.analysis.sweep_summary",
                                     description="Summarise a Hydra multirun folder into tables and a plot.")
    parser.add_argument("sweep_dir", type=Path, help="multirun folder, e.g. outputs/sweeps/<timestamp>")
    parser.add_argument("--metric", default=None, help="metric to rank and plot by (default: the runs' monitor)")
    parser.add_argument("--mode", default=None, choices=["max", "min"],
                        help="which end is best (default: the monitor's mode)")
    args = parser.parse_args(argv)
    try:
        rows = summarize(args.sweep_dir, args.metric, args.mode)
    except FileNotFoundError as err:
        raise TransferlabError(str(err)) from None
    if not rows:
        print_error(f"no job folders in {args.sweep_dir}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_script(summary_command, argv)


if __name__ == "__main__":
    sys.exit(main())
