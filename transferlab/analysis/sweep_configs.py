"""Configurations of a sweep over seeds: grouping, mean ± std and 95% CI per configuration, the choice, the charts.

A configuration is one assignment of the swept keys other than ``seed``. A sweep is summarised by configuration
when ``seed`` varies or when several jobs share a configuration (``-m seed=0,1,2,3,4 optimizer.lr=...``): each
configuration gets n (its completed jobs with a finite monitored value), the mean, the sample std (ddof=1) and
the half-width of the 95% confidence interval of the mean (Student's t, n - 1 degrees of freedom) of every metric.
The configuration with the best mean monitored value is chosen; test metrics are reported for it only.
"""

from __future__ import annotations

import math
import statistics

SEED_KEYS = ("seed",)
STATS = ("mean", "std", "ci95", "n")
CHOSEN_COLOR, OTHER_COLOR = "tab:orange", "tab:blue"


def value_key(value) -> tuple:
    """Numeric values in numeric order, then strings; for plot axes."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def figure(width: float, height: float):
    """A matplotlib Figure with constrained layout, off any GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def spread(values: list[float]) -> dict:
    """``mean``, sample ``std``, 95% CI half-width ``ci95`` (None when n < 2) and ``n`` of ``values``."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    if n == 1:
        return {"mean": values[0], "std": None, "ci95": None, "n": 1}
    from scipy.stats import t

    std = statistics.stdev(values)
    return {"mean": math.fsum(values) / n, "std": std, "ci95": float(t.ppf(0.975, n - 1)) * std / math.sqrt(n),
            "n": n}


def config_keys(keys: list[str]) -> list[str]:
    """The swept keys that define a configuration: all but the seed."""
    return [k for k in keys if k not in SEED_KEYS]


def is_seed_sweep(rows: list[dict], keys: list[str]) -> bool:
    """Whether ``seed`` varies across jobs or several jobs share a configuration."""
    if any(len({row.get(k, "") for row in rows}) > 1 for k in keys if k in SEED_KEYS):
        return True
    configs = [tuple(row.get(k, "") for k in config_keys(keys)) for row in rows]
    return len(set(configs)) < len(configs)


def group_configs(rows: list[dict], keys: list[str], metric: str, mode: str, metrics: list[str]) -> list[dict]:
    """One row per configuration, best mean ``metric`` first (those without a completed job last).

    Args:
        rows: Per-job rows of ``sweep_summary`` (``status`` and float metrics).
        keys: Configuration keys (swept keys without the seed).
        metric: The ranking metric.
        mode: ``"max"`` or ``"min"``.
        metrics: Every metric column to aggregate; ``test/`` ones only for the chosen configuration.

    Returns:
        Dicts with the key values, ``n`` (completed jobs with a finite ``metric``), ``jobs``, ``chosen``
        (``"yes"`` for the first, if it has n > 0), ``<metric> mean|std|ci95`` and ``<other> mean|std|ci95|n``;
        private ``_values`` (the ``metric`` values) and ``_label`` (``key=value, ...``) are for charts.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k, "") for k in keys), []).append(row)
    configs = []
    for values, members in groups.items():
        done = [r for r in members if r["status"] == "completed" and _finite(r.get(metric))]
        stats = spread([r[metric] for r in done])
        configs.append({**dict(zip(keys, values)), "n": stats["n"], "jobs": len(members), "chosen": "",
                        **{f"{metric} {s}": stats[s] for s in STATS[:3]}, "_values": [r[metric] for r in done],
                        "_members": done})
    sign = -1.0 if mode == "max" else 1.0
    configs.sort(key=lambda c: (c["n"] == 0, sign * c[f"{metric} mean"] if c["n"] else 0.0, -c["n"]))
    if configs and configs[0]["n"]:
        configs[0]["chosen"] = "yes"
    varying = [k for k in keys if len({c[k] for c in configs}) > 1]
    for config in configs:
        members = config.pop("_members")
        config["_label"] = ", ".join(f"{k}={config[k]}" for k in varying) or "(the only configuration)"
        for name in metrics:
            if name == metric or (name.startswith("test/") and not config["chosen"]):
                continue
            stats = spread([r[name] for r in members if _finite(r.get(name))])
            config.update({f"{name} {s}": stats[s] for s in STATS})
    return configs


def csv_columns(configs: list[dict], keys: list[str], metric: str, metrics: list[str]) -> list[str]:
    """The columns of ``summary_by_config.csv``."""
    others = [f"{m} {s}" for m in metrics if m != metric for s in STATS]
    return [*keys, "n", "jobs", "chosen", *(f"{metric} {s}" for s in STATS[:3]),
            *(c for c in others if any(c in config for config in configs))]


def _pm(mean, std, digits: int = 4) -> str:
    if mean is None:
        return ""
    return f"{mean:.{digits}g}" + ("" if std is None else f" ± {std:.2g}")


def _count(config: dict) -> str:
    return str(config["n"]) if config["n"] == config["jobs"] else f"{config['n']} of {config['jobs']}"


def table_rows(configs: list[dict], keys: list[str], metric: str, headline: list[str]) -> tuple[list, list]:
    """``(rows, columns)`` of the markdown table by configuration: formatted mean ± std per headline metric.

    Only the ``keys`` that vary get a column (``configuration`` when none does).
    """
    mean_col, ci_col = f"{metric} mean ± std", "95% CI ±"
    others = [m for m in headline if m != metric]
    keys = [k for k in keys if len({c[k] for c in configs}) > 1] or ["configuration"]
    columns = [*keys, "n", mean_col, ci_col, *(f"{m} mean ± std" for m in others), "chosen"]
    rows = []
    for config in configs:
        row = {**{k: config.get(k, config["_label"]) for k in keys}, "n": _count(config), "chosen": config["chosen"],
               mean_col: _pm(config[f"{metric} mean"], config[f"{metric} std"]),
               ci_col: "" if config[f"{metric} ci95"] is None else f"{config[f'{metric} ci95']:.2g}"}
        for m in others:
            cell = _pm(config.get(f"{m} mean"), config.get(f"{m} std"))
            if cell and m.startswith("test/"):
                cell += f" (n={config[f'{m} n']})"
            row[f"{m} mean ± std"] = cell
        rows.append(row)
    return rows, columns


def choice_text(configs: list[dict], metric: str, mode: str, evidence_n: int = 5) -> str:
    """Which configuration was chosen and by what rule, with its spread and the runner-up's overlap."""
    if not configs or not configs[0]["chosen"]:
        return f"No configuration has a completed job with a finite `{metric}`: nothing was chosen."
    best = configs[0]
    mean, std, ci = (best[f"{metric} {s}"] for s in STATS[:3])
    text = (f"**Chosen: `{best['_label']}`**, the best mean `{metric}` ({mode}) over seeds: {_pm(mean, std)} "
            f"(mean ± std), 95% CI ± {'n/a' if ci is None else f'{ci:.2g}'}, n = {_count(best)} jobs. Test figures "
            f"are reported for this configuration only (every job's are in summary.csv).")
    if best["n"] < evidence_n:
        text += f" n < {evidence_n}: below the evidence rule (≥ {evidence_n} seeds, mean ± 95% CI)."
    ranked = [c for c in configs[1:] if c["n"]]
    if ranked and ci is not None and ranked[0][f"{metric} ci95"] is not None:
        other = ranked[0]
        gap = abs(mean - other[f"{metric} mean"])
        if gap <= ci + other[f"{metric} ci95"]:
            text += (f" The runner-up `{other['_label']}` ({_pm(other[f'{metric} mean'], other[f'{metric} std'])}) "
                     f"has an overlapping 95% CI: the difference is not clearly beyond seed noise.")
    return text


def chart_title(metric: str, keys: list[str], mode: str, configs: list[dict], grouped: bool,
                what: str = "mean ± 95% CI") -> str:
    """``<metric> by <keys>``, with ``<what> over n = <n> seeds`` on a second line when ``grouped``."""
    head = f"{metric} by {' × '.join(keys)}" if keys else f"{metric} per configuration"
    if not grouped:
        return f"{head} ({mode} is best)"
    counts = sorted({c["n"] for c in configs if c["n"]}) or [0]
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{head}\n{what} over n = {seeds} seeds ({mode} is best)"


def _chosen_label(metric: str, mode: str, grouped: bool) -> str:
    return f"chosen (best {'mean ' if grouped else ''}{metric}, {mode})"


def config_chart(configs: list[dict], keys: list[str], metric: str, mode: str, grouped: bool):
    """Bar chart (zero or one key) or heatmap (two keys) of the mean ``metric`` per configuration.

    Bars carry 95% CI error bars, each seed's value as a dot and ``n``; heatmap cells carry mean ± CI and ``n``.
    The chosen configuration is coloured (bars) or outlined (heatmap) and named in the legend.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    cells = {tuple(c[k] for k in keys): c for c in configs}
    axes_values = [sorted({c[k] for c in configs}, key=value_key) for k in keys]
    chosen = _chosen_label(metric, mode, grouped)
    if len(keys) < 2:
        xs = axes_values[0] if keys else [None]
        fig = figure(max(5.0, 1.3 * len(xs) + 2.5), 4.5)
        ax = fig.add_subplot()
        picked = [cells[(x,)] if keys else configs[0] for x in xs]
        means = [c[f"{metric} mean"] for c in picked]
        errors = [c[f"{metric} ci95"] or 0.0 for c in picked]
        colors = [CHOSEN_COLOR if c["chosen"] else OTHER_COLOR for c in picked]
        ax.bar(range(len(xs)), [m or 0.0 for m in means], yerr=errors if grouped else None, capsize=5,
               color=colors, edgecolor="black", linewidth=0.6)
        for i, config in enumerate(picked):
            values = config["_values"]
            if grouped and values:
                offsets = [0.0] if len(values) == 1 else [0.24 * (j / (len(values) - 1) - 0.5) for j in
                                                           range(len(values))]
                ax.plot([i + o for o in offsets], values, "o", color="black", markersize=3.5, zorder=3)
            top = max([(means[i] or 0.0) + errors[i], *values, 0.0])
            label = "n/a" if means[i] is None else f"{means[i]:.3g}"
            label += f" ± {errors[i]:.2g}" if grouped and errors[i] else ""
            label += f"\nn={_count(config)}" if grouped else ""
            ax.annotate(label, (i, top), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                        fontsize=9)
        ax.margins(y=0.25)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs] if keys else [configs[0]["_label"]])
        ax.set_xlabel(keys[0] if keys else "configuration")
        ax.set_ylabel(f"mean {metric}" if grouped else metric)
        handles = [Patch(facecolor=CHOSEN_COLOR, edgecolor="black", label=chosen)]
        if len(picked) > 1:
            handles.append(Patch(facecolor=OTHER_COLOR, edgecolor="black", label="other configurations"))
        if grouped:
            handles += [Line2D([], [], color="black", marker="|", linestyle="", markersize=10, label="95% CI"),
                        Line2D([], [], color="black", marker="o", linestyle="", markersize=4, label="one seed")]
    else:
        ys, xs = axes_values
        fig = figure(max(5.5, 1.5 * len(xs) + 3.0), max(4.0, 1.0 * len(ys) + 2.5))
        ax = fig.add_subplot()
        grid = [[(cells[(y, x)][f"{metric} mean"] if (y, x) in cells else None) for x in xs] for y in ys]
        image = ax.imshow([[math.nan if v is None else v for v in line] for line in grid], cmap="viridis",
                          aspect="auto")
        fig.colorbar(image, ax=ax, label=f"mean {metric}" if grouped else metric)
        low, high = image.get_clim()
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                config, value = cells.get((y, x)), grid[i][j]
                text = "n/a" if value is None else f"{value:.3g}"
                if grouped and config is not None:
                    ci = config[f"{metric} ci95"]
                    text += ("" if ci is None else f"\n± {ci:.2g}") + f"\nn={_count(config)}"
                dark = value is not None and (value - low) < 0.5 * ((high - low) or 1.0)
                ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
                if config is not None and config["chosen"]:
                    ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, edgecolor="red",
                                           linewidth=3))
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        handles = [Patch(fill=False, edgecolor="red", linewidth=3, label=chosen)]
    ax.set_title(chart_title(metric, keys, mode, configs, grouped))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2), fontsize=9, frameon=False)
    return fig
