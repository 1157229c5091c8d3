"""Is training bound by data loading? Loader-only img/s (CPU workers, or ``data.on_device``) against model img/s.

Loader-only: one pass over the training loader of ``data=digits`` (or any in-memory data), batches moved to the
device and, with ``on_device``, augmented there — exactly what ``trainer.fit`` would receive. Model: training steps
of a ``strategy=finetune`` module on one such batch, repeated. Headroom = loader img/s / model img/s (goal >= 1.2).

    python benchmarks/dataload.py                        # ResNet-18 at 64 px, batch 128; CPU workers and on_device
    python benchmarks/dataload.py --size 32 --batch 512  # small images, where loaders fall behind on a GPU
    python benchmarks/dataload.py --quick

Each run writes into a new ``outputs/benchmarks/dataload/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, cli, device_name, fresh_out, now, report, versions  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402


def datamodule_and_module(args, on_device: bool, out: Path):
    cfg = load_config([f"model={args.model}", "model.weights=none", f"data.image_size={args.size}",
                       f"data.batch_size={args.batch}", f"data.num_workers={0 if on_device else args.workers}",
                       f"data.on_device={on_device}", "logger=none", "callbacks=none"], output_dir=out)
    _, datamodule, module, _ = build(cfg)
    datamodule.setup("fit")
    return datamodule, module


def loader_rate(datamodule, device, limit: int) -> float:
    loader = datamodule.train_dataloader()
    images_seen, start = 0, now(device)
    for i, batch in enumerate(loader):
        if i == limit:
            break
        batch = datamodule.on_after_batch_transfer(datamodule.transfer_batch_to_device(batch, device, 0), 0)
        images_seen += len(batch[0])
    return images_seen / (now(device) - start)


def model_rate(module, batch, device, steps: int) -> float:
    module = module.to(device).train()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    images, target = batch
    for step in range(steps + 2):
        if step == 2:
            start = now(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(module(images), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(images) * steps / (now(device) - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=10, help="loader batches timed")
    parser.add_argument("--steps", type=int, default=5, help="model steps timed")
    parser.add_argument("--quick", action="store_true")
    add_out_argument(parser, "dataload")
    args = parser.parse_args(argv)
    out = fresh_out("dataload", args.out)
    if args.quick:
        args.size, args.batch, args.workers, args.batches, args.steps = 32, 16, 0, 2, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for on_device in (False, True):
        datamodule, module = datamodule_and_module(args, on_device, out / ("on_device" if on_device else "workers"))
        loader = loader_rate(datamodule, device, args.batches)
        batch = datamodule.on_after_batch_transfer(
            datamodule.transfer_batch_to_device(next(iter(datamodule.train_dataloader())), device, 0), 0)
        model = model_rate(module, batch, device, args.steps)
        rows.append({"on_device": on_device, "workers": 0 if on_device else args.workers, "loader_img_s": loader,
                     "model_img_s": model, "headroom": loader / model})
    lines = [f"{versions()}; {device_name(device)}; {args.model} at {args.size} px, batch {args.batch}",
             "| data | loader img/s | model img/s | headroom |", "|---|---|---|---|"]
    lines += [f"| {'on_device' if r['on_device'] else str(r['workers']) + ' CPU workers'} | {r['loader_img_s']:.0f} | "
              f"{r['model_img_s']:.0f} | {r['headroom']:.2f}x |" for r in rows]
    report(out, rows, lines)
    return rows


if __name__ == "__main__":
    cli(main)
