"""1. Framework parity: transferlab's Lightning path against a hand-written torch loop on the same module.

Both sides train the same initial weights on the same synthetic uint8 images held on the device, at the same
precision, batch and optimizer: Lightning through the ``data.on_device`` loader, the loop by indexing and normalising
the tensor by hand. Medians of interleaved repeats; ratio = loop time / Lightning time per step. With compile, one
untimed run per side comes first, so compilation never falls in a timed window.
"""

from __future__ import annotations

import statistics
import time

from torchvision.transforms import v2

from transferlab.data.transforms import normalization

from ..budget import Part, SuiteEnv
from ..goals import mfu, train_gflop
from ..lightning_fit import SyntheticImages, fresh_module, lightning_seconds_per_step
from ..measure import loop_seconds_per_step, normalizer, stats, synthetic_uint8

SIDES = ("lightning", "loop")


def run(part: Part, env: SuiteEnv, compiled: bool) -> None:
    """Time both sides, eager or compiled, into ``part.record`` (summarised after every run)."""
    settings, device, record = env.settings, env.device, part.record
    plan, model, channels_last = settings["parity"], settings["model"], settings["channels_last"]
    batch, size, precision = settings["batch"], settings["size"], settings["precision"]
    record.update(model=model, image_size=size, batch=batch, precision=precision, channels_last=channels_last,
                  compile=compiled, warmup_steps=plan["warmup"], timed_steps=plan["steps"],
                  optimizer="AdamW lr 1e-3 wd 0.05",
                  data="synthetic uint8 images on the device; Lightning: data.on_device loader (index batches, "
                       "normalised on the device); loop: the same tensor indexed and normalised by hand")
    data_config, lit_module = fresh_module(part, model, size, channels_last, compiled)
    _, loop_module = fresh_module(part, model, size, channels_last, compiled)  # the same initial weights
    loop_module = loop_module.to(device)
    images, labels = synthetic_uint8(batch * (plan["warmup"] + plan["steps"]), size, device)
    datamodule = SyntheticImages(images, labels, v2.Compose(normalization(data_config)), data_config=data_config,
                                 image_size=size, batch_size=batch, on_device=True)
    normalize, bf16 = normalizer(data_config, device), precision.startswith("bf16")

    def seconds_per_step(side: str, steps: int) -> float:
        if side == "lightning":
            return lightning_seconds_per_step(lit_module, datamodule, device, precision, plan["warmup"], steps)
        return loop_seconds_per_step(loop_module, images, labels, normalize, device, bf16, channels_last, batch,
                                     plan["warmup"], steps)

    times: dict[str, list[float]] = {side: [] for side in SIDES}
    first: dict[str, float] = {}
    if compiled:  # an untimed run per side first: compilation (and recompilation) never falls in a timed window
        for side in SIDES:
            start = time.perf_counter()
            seconds_per_step(side, 2)
            first[side] = time.perf_counter() - start
            record["first_run_s"] = dict(first)
    for side in part.interleaved(plan["repeats"], SIDES):
        start = time.perf_counter()
        times[side].append(seconds_per_step(side, plan["steps"]))
        first.setdefault(side, time.perf_counter() - start)
        summarize(record, times, first, batch, train_gflop(model, size), env.peak_tflops)


def summarize(record: dict, times: dict, first: dict, batch: int, gflop: float | None, peak: float | None) -> None:
    """img/s of each side, their ratio and the overhead in ms per step, MFU, from the seconds per step so far."""
    lit, loop = times["lightning"], times["loop"]
    record["s_per_step"] = {"lightning": list(lit), "loop": list(loop)}
    record["first_run_s"] = dict(first)  # the first run of each side: compilation, cuDNN autotuning
    record["lightning_img_s"] = stats([batch / t for t in lit])
    record["loop_img_s"] = stats([batch / t for t in loop])
    if lit and loop:
        ours, theirs = statistics.median(lit), statistics.median(loop)
        record["ratio"] = theirs / ours
        record["ratio_per_repeat"] = stats([b / a for a, b in zip(lit, loop)])
        record["overhead_ms_per_step"] = 1000 * (ours - theirs)
        record["repeats"] = min(len(lit), len(loop))
    record["mfu_lightning"] = mfu(record["lightning_img_s"]["median"], gflop, peak)
    record["mfu_loop"] = mfu(record["loop_img_s"]["median"], gflop, peak)
