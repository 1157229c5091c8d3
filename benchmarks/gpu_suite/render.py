"""``results.md``: the results file as markdown, a header, the goals, then one section per part of the suite."""

from __future__ import annotations

from collections.abc import Callable

from .goals import GOALS

TITLES = {"parity": "1. Framework parity: transferlab's Lightning path vs a hand-written torch loop",
          "throughput": "2. Training throughput and MFU (lean loop on transferlab's module)",
          "extraction": "3. Feature extraction (inference)",
          "dataload": "4. Data loading: data.on_device vs CPU DataLoader workers",
          "dann": "5. Domain adaptation cost: DANN vs source_only"}
MFU_GOAL = {"what": "training MFU (dense bf16 peak)", "op": "", "target": None}
RATIO_GOALS = ("ratio", "dann_ratio", "loader_headroom", "mfu")  # shown with 3 decimals


def fmt(value, digits: int = 1) -> str:
    """A number with thousands separators and ``digits`` decimals; "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_stats(s: dict | None, digits: int = 0) -> str:
    """A stats dict as "median (min–max, n=...)"; "—" when there is none."""
    if not s or s.get("median") is None:
        return "—"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f}, n={s['n']})"


def status_line(entry: dict) -> str:
    """A part's status, time against its budget, and its error, skip reason or truncation."""
    if not entry:
        return "not run"
    text = f"{entry['status']}, {entry['seconds']:.1f} s of a {entry['budget_s']:.0f} s budget"
    if entry.get("error"):
        text += f" — **{entry['error']}**"
    for note in ("reason", "truncated"):
        if entry.get(note):
            text += f" — {entry[note]}"
    return text


def header(results: dict) -> list[str]:
    dev, ver = results["device"], results["versions"]
    lines = ["# transferlab GPU suite", ""]
    if results["dry_run"]:
        lines += ["> **DRY RUN on the CPU (`--dry-run`): tiny sizes, fp32, a few steps, compile skipped. These numbers "
                  "only prove the suite runs; they are not GPU figures and must never be quoted as such.**", ""]
    return lines + [
        f"- status: {'complete' if results['complete'] else 'INCOMPLETE: ' + str(results.get('stopped'))}; "
        f"started {results['started']}, wall {fmt(results.get('wall_s'))} s",
        f"- device: {dev['name']}" + (f"; nvidia-smi: `{dev['nvidia_smi']}`" if dev.get("nvidia_smi") else ""),
        f"- peak used for MFU: {fmt(results['peak_tflops'], 0)} TFLOP/s dense bf16 ({results['peak_source']})",
        f"- versions: {', '.join(f'{k} {v}' for k, v in ver.items())}",
        f"- weights: {results['weights']}",
        f"- command: `{results['command']}`", ""]


def target(goal: dict) -> str:
    """A goal's target with its public anchor; "—" for a figure only reported."""
    if goal["target"] is None:
        return "—"
    return f"{goal['op']} {goal['target']:,g}" + (f" ({goal['anchor']})" if goal.get("anchor") else "")


def pending() -> str:
    """The goals table of benchmarks/RESULTS.md before any GPU run of the suite: each goal, not yet measured."""
    lines = ["| goal | target | result |", "| --- | --- | --- |"]
    lines += [f"| {goal['what']} | {target(goal)} | not yet measured |" for goal in (*GOALS.values(), MFU_GOAL)]
    return "\n".join(lines) + "\n"


def goals(results: dict) -> list[str]:
    lines = ["## Goals", ""]
    if results["dry_run"]:
        lines += [f"Dry run: the figures below come from {results['settings']['model']} at "
                  f"{results['settings']['size']} px on the CPU and answer none of these goals.", ""]
    lines += ["| goal | target | measured | meets |", "|---|---|---|---|"]
    for row in results["goals"]:
        goal = GOALS.get(row["goal"], MFU_GOAL)
        digits = 3 if row["goal"] in RATIO_GOALS else 0
        measured = "; ".join(f"{k}: {fmt(v, digits)}" for k, v in row["measured"].items())
        lines.append(f"| {goal['what']} | {target(goal)} | {measured} | {row['meets']} |")
    return lines


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def by_mode(parts: dict, section: str, columns: list[str], cells: Callable[[dict], list[str]],
            note: Callable[[dict], str]) -> list[str]:
    """A table with one row per mode of ``section`` (eager, compile): the mode, its status, then ``cells(entry)``
    under ``columns``; then ``note(entry)`` of the eager part, once it has run."""
    lines = [row(["compile", "status", *columns]), "|" + "---|" * (len(columns) + 2)]
    lines += [row([mode, status_line(e), *cells(e)]) for mode in ("eager", "compile")
              for e in [parts.get(f"{section}/{mode}", {})]]
    eager = parts.get(f"{section}/eager", {})
    return lines + ([f"\n{note(eager)}"] if eager.get("model") else [])


def sizes(e: dict) -> str:
    return (f"{e['model']} at {e['image_size']} px, batch {e['batch']}, {e['precision']}, "
            f"channels_last={e['channels_last']}")


def flop_cells(e: dict) -> list[str]:
    return [f"{fmt(e.get('gflop_per_img_analytic'), 2)} / {fmt(e.get('gflop_per_img_counted'), 2)}",
            fmt(e.get("mfu"), 3)]


def parity(parts: dict) -> list[str]:
    def cells(e: dict) -> list[str]:
        rr, first = e.get("ratio_per_repeat") or {}, e.get("first_run_s") or {}
        return [fmt_stats(e.get("lightning_img_s")), fmt_stats(e.get("loop_img_s")),
                f"{fmt(e.get('ratio'), 3)} ({fmt(rr.get('min'), 3)}–{fmt(rr.get('max'), 3)})",
                fmt(e.get("overhead_ms_per_step"), 2),
                f"{fmt(e.get('mfu_lightning'), 3)} / {fmt(e.get('mfu_loop'), 3)}",
                f"{fmt(first.get('lightning'))} / {fmt(first.get('loop'))}"]

    return by_mode(parts, "parity", ["transferlab img/s (median, min–max)", "loop img/s", "ratio (per-repeat min–max)",
                                     "overhead ms/step", "MFU transferlab / loop", "first run s, transferlab / loop"],
                   cells, lambda e: f"{sizes(e)}, {e['optimizer']}, {e['warmup_steps']} warm-up + {e['timed_steps']} "
                                    f"timed steps per run, repeats interleaved (order alternating); {e['data']}. "
                                    f"Ratio = loop time / transferlab time per step (medians).")


def throughput(parts: dict) -> list[str]:
    return by_mode(parts, "throughput", ["train img/s (median, min–max)", "ms/step", "GFLOP/img analytic / counted",
                                         "MFU"],
                   lambda e: [fmt_stats(e.get("img_s")), fmt(e.get("ms_per_step"), 2), *flop_cells(e)],
                   lambda e: f"{sizes(e)}; {e['loop']}; {e['warmup_steps']} warm-up steps, then repeats of "
                             f"{e['timed_steps']} timed steps. MFU = img/s × analytic GFLOP/img / peak.")


def extraction(parts: dict) -> list[str]:
    return by_mode(parts, "extraction", ["backbone forward img/s (median, min–max)", "transferlab.extract img/s",
                                         "GFLOP/img analytic / counted", "MFU"],
                   lambda e: [fmt_stats(e.get("img_s")), fmt_stats(e.get("extract_fn_img_s")), *flop_cells(e)],
                   lambda e: f"{sizes(e)}; {e['forward']}; transferlab.extract column: {e.get('extract_fn', '—')}.")


def dataload(parts: dict) -> list[str]:
    e = parts.get("dataload/loaders_and_training", {})
    lines = [f"Status: {status_line(e)}." + (f" {e['model']} at {e['image_size']} px, batch {e['batch']}, "
                                              f"{e['images']:,} images; {e['data']}." if e.get("model") else ""), "",
             "| data path | loader-only img/s | model img/s (ready batch) | headroom | Lightning training img/s |",
             "|---|---|---|---|---|"]
    for path in ("cpu_workers", "on_device"):
        label = f"{e.get('cpu_workers')} CPU workers" if path == "cpu_workers" else "data.on_device=true"
        lines.append(f"| {label} | {fmt((e.get('loader_img_s') or {}).get(path), 0)} | "
                     f"{fmt(e.get('model_img_s'), 0)} | {fmt((e.get('headroom') or {}).get(path), 2)} | "
                     f"{fmt_stats((e.get('lightning_train_img_s') or {}).get(path))} |")
    return lines


def dann(parts: dict) -> list[str]:
    e = parts.get("dann/step_cost", {})
    ms = e.get("ms_per_step") or {}
    lines = [f"Status: {status_line(e)}." + (f" {e['model']} at {e['image_size']} px, batch "
                                              f"{e['batch_per_domain']} per domain, {e['precision']}; {e['data']}."
                                              if e.get("model") else ""), "",
             "| strategy | ms/step (median, min–max) | source img/s |", "|---|---|---|"]
    for strategy in ("source_only", "dann"):
        lines.append(f"| {strategy} | {fmt_stats(ms.get(strategy), 2)} | "
                     f"{fmt((e.get('source_img_s') or {}).get(strategy), 0)} |")
    return lines + [f"\nDANN / source_only: **{fmt(e.get('ratio_dann_vs_source_only'), 3)}×**"]


SECTION_LINES = {"parity": parity, "throughput": throughput, "extraction": extraction, "dataload": dataload,
                 "dann": dann}


def render(results: dict) -> str:
    """The whole page: header, goals, and every section (parts that did not run show as "not run")."""
    lines = header(results) + goals(results)
    for name, section_lines in SECTION_LINES.items():
        lines += ["", f"## {TITLES[name]}", "", *section_lines(results["parts"])]
    return "\n".join(lines) + "\n"
