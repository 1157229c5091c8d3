"""transferlab's Lightning training path against a hand-written torch loop: same model, data, batch, precision.

Both sides train a freshly built copy of the same ``strategy=finetune`` module (same initial weights) with AdamW on
the same in-memory batches; the loop does forward, cross-entropy, backward and step, nothing else. Repeats alternate
which side runs first and the medians are reported, so drifting machine load hits both alike. Reported: img/s of
each, their ratio, and the framework's overhead in ms per step.

    python benchmarks/parity.py                       # CPU: ResNet-18 at 32 px, batch 32
    python benchmarks/parity.py --config gpu          # ResNet-50 224 px batch 256 bf16 channels_last (+compile),
                                                      # and ResNet-18 at 32 px
    python benchmarks/parity.py --quick               # a smoke run

Each run writes into a new ``outputs/benchmarks/parity/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import StepTimer, add_out_argument, cli, device_name, fresh_out, median, now, report, versions  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402

CONFIGS = {  # name: (model, image size, batch, precision, channels_last, compile)
    "cpu": [("resnet18", 32, 32, "32-true", False, False)],
    "gpu": [("resnet50", 224, 256, "bf16-mixed", True, False), ("resnet50", 224, 256, "bf16-mixed", True, True),
            ("resnet18", 32, 256, "bf16-mixed", True, False)],
}


def make_module(model: str, out: Path):
    cfg = load_config([f"model={model}", "model.weights=none", "strategy=finetune", "scheduler=none",
                       "optimizer=adamw", "logger=none", "callbacks=none", "data.image_size=32"], output_dir=out)
    _, _, module, _ = build(cfg)
    return module


def batches(size: int, batch: int, steps: int) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch * steps, 3, size, size, generator=generator)
    labels = torch.randint(0, 10, (batch * steps,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=batch, pin_memory=torch.cuda.is_available())


def lightning_step_time(module, loader, device, precision, channels_last, compiled, warmup) -> float:
    module.channels_last = channels_last
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=len(loader),
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
    trainer.fit(torch.compile(module) if compiled else module, train_dataloaders=loader)
    return timer.seconds_per_step


def loop_step_time(module, loader, device, precision, channels_last, compiled, warmup) -> float:
    model = module.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    autocast = precision.startswith("bf16")
    start = None
    for i, (images, target) in enumerate(loader):
        if i == warmup:
            start = now(device)
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(step_model(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (now(device) - start) / (len(loader) - warmup)


def measure(spec, device, steps, warmup, repeats, out: Path) -> dict:
    """One configuration; ``out`` is its own folder (the module's config.yaml)."""
    model, size, batch, precision, channels_last, compiled = spec
    base = make_module(model, out)
    loader = batches(size, batch, steps)
    times = {"lightning": [], "loop": []}
    for r in range(repeats):
        order = ["lightning", "loop"] if r % 2 == 0 else ["loop", "lightning"]
        for side in order:
            fn = lightning_step_time if side == "lightning" else loop_step_time
            times[side].append(fn(copy.deepcopy(base), loader, device, precision, channels_last, compiled, warmup))
    ours, loop = median(times["lightning"]), median(times["loop"])
    return {"model": model, "image_size": size, "batch": batch, "precision": precision,
            "channels_last": channels_last, "compile": compiled, "device": device_name(device),
            "lightning_img_s": batch / ours, "loop_img_s": batch / loop, "ratio": loop / ours,
            "overhead_ms_per_step": 1000 * (ours - loop), "repeats": repeats, "timed_steps": steps - warmup}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CPU, 16 px, few steps: a smoke run")
    add_out_argument(parser, "parity")
    args = parser.parse_args(argv)
    out = fresh_out("parity", args.out)
    device = torch.device("cuda" if args.config == "gpu" else "cpu")
    specs = CONFIGS[args.config]
    if args.quick:
        specs, args.steps, args.warmup, args.repeats = [("resnet18", 16, 4, "32-true", False, False)], 4, 1, 2
    L.seed_everything(0, verbose=False)
    rows = [measure(spec, device, args.steps, args.warmup, args.repeats, out / f"{i}_{spec[0]}")
            for i, spec in enumerate(specs)]
    lines = [f"{versions()}; {rows[0]['device']}",
             "| model | px | batch | precision | channels_last | compile | transferlab img/s | loop img/s | ratio | "
             "overhead ms/step |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['image_size']} | {r['batch']} | {r['precision']} | {r['channels_last']} | "
              f"{r['compile']} | {r['lightning_img_s']:.1f} | {r['loop_img_s']:.1f} | {r['ratio']:.3f} | "
              f"{r['overhead_ms_per_step']:.2f} |" for r in rows]
    report(out, rows, lines)
    return rows


if __name__ == "__main__":
    cli(main)
