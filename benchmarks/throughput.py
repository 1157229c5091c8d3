"""Training and feature-extraction throughput (img/s) and MFU of torchvision backbones through transferlab's modules.

Training: a ``strategy=finetune`` module, forward + cross-entropy + backward + AdamW step, bf16 autocast and
channels_last on a GPU (optionally ``torch.compile``). Extraction: the backbone's forward under ``inference_mode``.
FLOPs per image come from ``torch.utils.flop_counter`` (training = forward + backward as counted); MFU is
achieved FLOP/s over the device's dense bf16 peak (``--peak-tflops``, default 989 for an H100 SXM).

    python benchmarks/throughput.py                          # on the GPU: resnet18/50, efficientnet_b0, vit_b_16
    python benchmarks/throughput.py --compile                # the same with torch.compile
    python benchmarks/throughput.py --quick                  # CPU smoke run

Each run writes into a new ``outputs/benchmarks/throughput/<time>`` (or ``--out``, a new or empty folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import add_out_argument, cli, device_name, fresh_out, now, report, versions  # noqa: E402

from transferlab.experiment import build, load_config  # noqa: E402

MODELS = ["resnet18", "resnet50", "efficientnet_b0", "vit_b_16"]


def make_module(model: str, out: Path):
    """A freshly built ``strategy=finetune`` module on random init (``out`` keeps its config.yaml)."""
    cfg = load_config([f"model={model}", "model.weights=none", "strategy=finetune", "scheduler=none",
                       "optimizer=adamw", "logger=none", "callbacks=none", "data.image_size=32"], output_dir=out)
    return build(cfg)[2]


def flops_per_image(model, images, train: bool) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(images)
        if train:
            F.cross_entropy(out, torch.zeros(len(images), dtype=torch.long, device=images.device)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(images)


def rate(fn, steps: int, warmup: int, batch: int, device) -> float:
    for _ in range(warmup):
        fn()
    start = now(device)
    for _ in range(steps):
        fn()
    return batch * steps / (now(device) - start)


def measure(name: str, args, device, out: Path) -> dict:
    module = make_module(name, out / name).to(device).train()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    target = torch.randint(0, 10, (args.batch,), device=device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    model = torch.compile(module) if args.compile else module
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    train_flops = flops_per_image(module, images[:2], train=True)
    infer_flops = flops_per_image(module.backbone, images[:2], train=False)

    def train_step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(images), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    backbone = torch.compile(module.backbone) if args.compile else module.backbone

    @torch.inference_mode()
    def extract_step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            backbone(images)

    train_rate = rate(train_step, args.steps, args.warmup, args.batch, device)
    module.eval()
    extract_rate = rate(extract_step, args.steps, args.warmup, args.batch, device)
    peak = args.peak_tflops * 1e12
    return {"model": name, "image_size": args.size, "batch": args.batch, "compile": args.compile,
            "train_img_s": train_rate, "extract_img_s": extract_rate,
            "train_gflop_per_img": train_flops / 1e9, "forward_gflop_per_img": infer_flops / 1e9,
            "train_mfu": train_rate * train_flops / peak, "extract_mfu": extract_rate * infer_flops / peak}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--quick", action="store_true", help="CPU, resnet18 at 32 px, batch 4: a smoke run")
    add_out_argument(parser, "throughput")
    args = parser.parse_args(argv)
    out = fresh_out("throughput", args.out)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if args.quick:
        args.models, args.size, args.batch, args.steps, args.warmup = ["resnet18"], 32, 4, 2, 1
    rows = [measure(name, args, device, out) for name in args.models]
    lines = [f"{versions()}; {device_name(device)}; MFU against {args.peak_tflops:g} TFLOP/s",
             "| model | px | batch | compile | train img/s | extract img/s | train GFLOP/img | train MFU | "
             "extract MFU |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['image_size']} | {r['batch']} | {r['compile']} | {r['train_img_s']:.0f} | "
              f"{r['extract_img_s']:.0f} | {r['train_gflop_per_img']:.2f} | {100 * r['train_mfu']:.1f}% | "
              f"{100 * r['extract_mfu']:.1f}% |" for r in rows]
    report(out, rows, lines)
    return rows


if __name__ == "__main__":
    cli(main)
