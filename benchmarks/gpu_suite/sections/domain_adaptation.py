"""5. Domain adaptation cost: DANN against source only on ``data=digits_blend`` held on the device.

Both strategies share one DataModule at an equal per-domain batch; ms per step of each, their ratio, interleaved
repeats.
"""

from __future__ import annotations

import statistics
import time

from ..budget import Part, SuiteEnv
from ..lightning_fit import build_module, lightning_seconds_per_step
from ..measure import stats

STRATEGIES = ("source_only", "dann")


def run(part: Part, env: SuiteEnv) -> None:
    """Time ``strategy=dann`` and ``strategy=source_only`` into ``part.record`` (summarised after every run)."""
    settings, device, record = env.settings, env.device, part.record
    plan = settings["dann"]
    batch, size, precision = plan["batch"], plan["size"], settings["precision"]
    extra = ("data=digits_blend", f"data.batch_size={batch}", "++data.on_device=true", "data.num_workers=0",
             *((f"data.photos=[{','.join(plan['photos'])}]",) if plan["photos"] else ()))
    record.update(model=plan["model"], image_size=size, batch_per_domain=batch, precision=precision,
                  channels_last=settings["channels_last"], warmup_steps=plan["warmup"], timed_steps=plan["steps"],
                  data="data=digits_blend with data.on_device=true (one DataModule shared by both strategies)",
                  optimizer="AdamW (optimizer=adamw), scheduler=none")
    modules, datamodule = {}, None
    for strategy in STRATEGIES:
        _, dm, modules[strategy] = build_module(part, plan["model"], size, settings["channels_last"], strategy=strategy,
                                                extra=extra)
        datamodule = datamodule or dm
    start = time.perf_counter()
    datamodule.setup("fit")
    record["data_setup_s"] = time.perf_counter() - start
    times: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    for strategy in part.interleaved(plan["repeats"], STRATEGIES):
        times[strategy].append(lightning_seconds_per_step(modules[strategy], datamodule, device, precision,
                                                          plan["warmup"], plan["steps"]))
        record["ms_per_step"] = {s: stats([1000 * t for t in ts]) for s, ts in times.items() if ts}
        if times["source_only"] and times["dann"]:
            record["ratio_dann_vs_source_only"] = statistics.median(times["dann"]) / statistics.median(
                times["source_only"])
            record["source_img_s"] = {s: batch / statistics.median(ts) for s, ts in times.items()}
            record["repeats"] = min(len(ts) for ts in times.values())
