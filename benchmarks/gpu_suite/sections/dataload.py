"""4. Data loading: ``data.on_device`` against CPU DataLoader workers on a synthetic CIFAR-sized uint8 set.

The CIFAR-10 training recipe (pad-and-crop, flip, normalise) per sample in workers or per batch on the device;
loader-only img/s, the model's img/s on a ready batch (headroom = loader / model), and Lightning training img/s with
each loader.
"""

from __future__ import annotations

import torch
from common import now

from transferlab.data.cifar10 import cifar_train_transform

from ..budget import Part, SuiteEnv
from ..lightning_fit import SyntheticImages, fresh_module, lightning_seconds_per_step
from ..measure import adamw, stats, synthetic_uint8, timed_rate, train_step

PATHS = ("on_device", "cpu_workers")


def loader_rate(datamodule, device: torch.device, warmup: int, batches: int) -> float:
    """Loader-only img/s: batches as ``trainer.fit`` receives them (moved, and materialised on the device)."""
    seen, start, i = 0, None, 0
    while True:
        for batch in datamodule.train_dataloader():
            if i == warmup:
                start = now(device)
            batch = datamodule.on_after_batch_transfer(datamodule.transfer_batch_to_device(batch, device, 0), 0)
            if i >= warmup:
                seen += len(batch[0])
            i += 1
            if i == warmup + batches:
                return seen / (now(device) - start)


def run(part: Part, env: SuiteEnv) -> None:
    """Time both loaders alone, the model on a ready batch, and Lightning training with each loader."""
    settings, device, record = env.settings, env.device, part.record
    plan = settings["dataload"]
    batch, size, precision = plan["batch"], plan["size"], settings["precision"]
    record.update(model=plan["model"], image_size=size, batch=batch, images=plan["images"], precision=precision,
                  channels_last=settings["channels_last"], cpu_workers=plan["workers"], loader_batches=plan["batches"],
                  warmup_batches=plan["warmup_batches"], warmup_steps=plan["warmup"], timed_steps=plan["steps"],
                  data="synthetic CIFAR-sized uint8 set in host memory; transform: transferlab's CIFAR-10 training "
                       "recipe (pad-and-crop, flip, normalise), per sample in workers or per batch on the device")
    data_config, module = fresh_module(part, plan["model"], size, settings["channels_last"])
    images, labels = synthetic_uint8(plan["images"], size, torch.device("cpu"))
    transform = cifar_train_transform(data_config, size)
    datamodules = {}
    for path in ("cpu_workers", "on_device"):
        on_device = path == "on_device"
        workers = 0 if on_device else plan["workers"]
        dm = SyntheticImages(images, labels, transform, data_config=data_config, image_size=size,
                             batch_size=batch, num_workers=workers, pin_memory=device.type == "cuda" and not on_device,
                             persistent_workers=workers > 0, on_device=on_device)
        dm.setup("fit")
        datamodules[path] = dm
        record.setdefault("loader_img_s", {})[path] = loader_rate(dm, device, plan["warmup_batches"], plan["batches"])

    module = module.to(device).train()  # the model's own rate on one ready batch
    ready = datamodules["on_device"]
    x, y = ready.on_after_batch_transfer(
        ready.transfer_batch_to_device(next(iter(ready.train_dataloader())), device, 0), 0)
    optimizer, bf16 = adamw(module.parameters()), precision.startswith("bf16")
    model_rec: dict = {}
    timed_rate(part, lambda: train_step(module, optimizer, x, y, bf16), device, batch, plan["warmup"], plan["steps"], 1,
               model_rec)
    record["model_img_s"] = model_rec["img_s"]["median"]
    record["headroom"] = {p: r / record["model_img_s"] for p, r in record["loader_img_s"].items()}

    times: dict[str, list[float]] = {"cpu_workers": [], "on_device": []}
    for path in part.interleaved(plan["repeats"], PATHS):
        times[path].append(lightning_seconds_per_step(module, datamodules[path], device, precision, plan["warmup"],
                                                      plan["steps"]))
        record["lightning_train_img_s"] = {p: stats([batch / t for t in ts]) for p, ts in times.items() if ts}
