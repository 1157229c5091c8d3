"""3. Feature extraction: the backbone's forward under ``inference_mode`` (eager and compiled), and
``transferlab.extract.extract`` over uint8 batches already on the device (features copied to host memory)."""

from __future__ import annotations

import torch
from common import now

from transferlab.extract import extract

from ..budget import Part, SuiteEnv
from ..goals import forward_gflop, mfu
from ..lightning_fit import fresh_module
from ..measure import counted_gflop, layout, normalizer, stats, synthetic_uint8, timed_rate

EXTRACT_FN = ("transferlab.extract.extract over uint8 batches already on the device (normalised there), features "
              "copied to host memory every batch")


def run(part: Part, env: SuiteEnv, compiled: bool) -> None:
    """Time the backbone's forward into ``part.record``; eager runs also time ``transferlab.extract.extract``."""
    settings, device, record = env.settings, env.device, part.record
    plan, size = settings["extraction"], settings["size"]
    batch, bf16 = plan["batch"], settings["precision"].startswith("bf16")
    record.update(model=settings["model"], image_size=size, batch=batch, precision="bf16 autocast" if bf16 else "fp32",
                  channels_last=settings["channels_last"], compile=compiled, warmup_steps=plan["warmup"],
                  timed_steps=plan["steps"],
                  forward="the backbone (pooled features) under torch.inference_mode, one static normalised batch")
    data_config, module = fresh_module(part, settings["model"], size, settings["channels_last"])
    backbone = module.backbone.to(device).eval()
    forward = torch.compile(backbone) if compiled else backbone
    images, labels = synthetic_uint8(batch * plan["steps"], size, device)
    normalize = normalizer(data_config, device)
    x = layout(normalize(images[:batch]), settings["channels_last"])
    if not compiled:
        record["gflop_per_img_counted"] = counted_gflop(backbone, x[:2], train=False)
    record["gflop_per_img_analytic"] = forward_gflop(settings["model"], size)

    @torch.inference_mode()
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            forward(x)

    timed_rate(part, step, device, batch, plan["warmup"], plan["steps"], plan["repeats"], record)
    record["mfu"] = mfu(record["img_s"]["median"], record["gflop_per_img_analytic"], env.peak_tflops)
    if compiled:
        return

    def features(u8):  # transferlab.extract.extract's forward: uint8 batch on the device -> features
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return backbone(layout(normalize(u8), settings["channels_last"])).float()

    def loader():
        for i in range(plan["steps"]):
            yield images[i * batch:(i + 1) * batch], labels[i * batch:(i + 1) * batch]

    extract(features, [(images[:batch], labels[:batch])], module=backbone)  # warm-up
    rates = []
    for _ in part.repeats(plan["repeats"]):
        start = now(device)
        out = extract(features, loader(), module=backbone)
        rates.append(len(out["features"]) / (now(device) - start))
        record["extract_fn_img_s"] = stats(rates)
    record["extract_fn"] = EXTRACT_FN
