"""2. Training throughput and MFU: transferlab's module in a lean loop on one static batch (the model's ceiling).

MFU = img/s x the analytic GFLOP per image (ResNet-50 training: 24.5 at 224 px) over the device's dense bf16 peak,
beside the FLOPs torch counts.
"""

from __future__ import annotations

from ..budget import Part, SuiteEnv
from ..goals import mfu, train_gflop
from ..lightning_fit import fresh_module
from ..measure import adamw, counted_gflop, layout, normalizer, synthetic_uint8, timed_rate, train_step


def run(part: Part, env: SuiteEnv, compiled: bool) -> None:
    """Time training steps on one normalised batch, eager or compiled, into ``part.record``."""
    settings, device, record = env.settings, env.device, part.record
    plan, batch, size = settings["throughput"], settings["batch"], settings["size"]
    record.update(model=settings["model"], image_size=size, batch=batch, precision=settings["precision"],
                  channels_last=settings["channels_last"], compile=compiled, warmup_steps=plan["warmup"],
                  timed_steps=plan["steps"],
                  loop="one static normalised batch on the device; forward, cross-entropy, backward, AdamW step")
    data_config, model = fresh_module(part, settings["model"], size, settings["channels_last"], compiled)
    module = getattr(model, "_orig_mod", model).to(device).train()
    images, target = synthetic_uint8(batch, size, device)
    x = layout(normalizer(data_config, device)(images), settings["channels_last"])
    if not compiled:
        record["gflop_per_img_counted"] = counted_gflop(module, x[:2], train=True)
    record["gflop_per_img_analytic"] = train_gflop(settings["model"], size)
    optimizer, bf16 = adamw(module.parameters()), settings["precision"].startswith("bf16")

    timed_rate(part, lambda: train_step(model, optimizer, x, target, bf16), device, batch, plan["warmup"],
               plan["steps"], plan["repeats"], record)
    record["mfu"] = mfu(record["img_s"]["median"], record["gflop_per_img_analytic"], env.peak_tflops)
    if "gflop_per_img_counted" in record:
        record["mfu_counted_flops"] = mfu(record["img_s"]["median"], record["gflop_per_img_counted"], env.peak_tflops)
