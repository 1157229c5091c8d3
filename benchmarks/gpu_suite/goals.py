"""The goals the suite answers, the FLOP figures and device peaks behind MFU, and the goal rows of a results file."""

from __future__ import annotations

RESNET50_FORWARD_GFLOP_224 = 8.2          # per image at 224 px (4.1 GMAC)
RESNET50_TRAIN_GFLOP_224 = 24.5           # forward + backward: about 3 x forward
# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, matched in order against torch.cuda.get_device_name.
# A device not listed (or a variant whose peak differs and is not listed, such as the NVL boards) gets MFU null.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("NVL", None), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))

GOALS = {
    "train_img_s": {"target": 3200.0, "op": ">=", "what": "ResNet-50 training img/s, 224 px, bf16, channels_last",
                    "anchor": "public anchor 2,790 img/s on an H100 SXM (Lambda, NVIDIA's example code)"},
    "ratio": {"target": 0.97, "op": ">=", "what": "transferlab Lightning path / hand-written loop (img/s ratio)"},
    "extract_img_s": {"target": 10000.0, "op": ">=", "what": "ResNet-50 feature extraction img/s, 224 px, bf16",
                      "anchor": "public anchor 8,241 img/s inference on an A100"},
    "loader_headroom": {"target": 1.2, "op": ">=", "what": "data.on_device loader img/s / model img/s",
                        "anchor": "the loader 20% ahead of the model"},
    "dann_ratio": {"target": 2.05, "op": "<=", "what": "DANN / source_only ms per step, equal per-domain batch",
                   "anchor": "the CPU strategy_cost goal"},
}


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of the first ``PEAK_BF16_TFLOPS`` entry in ``device_name``; None when none is."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def train_gflop(model: str, size: int) -> float | None:
    """ResNet-50's training GFLOP per image (24.5 at 224 px, scaling with pixels); None for another model."""
    return RESNET50_TRAIN_GFLOP_224 * (size / 224) ** 2 if model == "resnet50" else None


def forward_gflop(model: str, size: int) -> float | None:
    """ResNet-50's forward GFLOP per image (8.2 at 224 px, scaling with pixels); None for another model."""
    return RESNET50_FORWARD_GFLOP_224 * (size / 224) ** 2 if model == "resnet50" else None


def mfu(img_s: float | None, gflop_per_img: float | None, peak: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak; None when any input is unknown."""
    if img_s is None or gflop_per_img is None or peak is None:
        return None
    return img_s * gflop_per_img * 1e9 / (peak * 1e12)


def median_of(entry: dict | None, key: str):
    """``entry[key]``'s median when it is a stats dict, else the value itself (None when absent)."""
    value = (entry or {}).get(key)
    return value.get("median") if isinstance(value, dict) else value


def _best(values) -> float | None:
    return max((v for v in values if v is not None), default=None)


def goal_rows(results: dict) -> list[dict]:
    """Each goal beside the figures of ``results["parts"]`` that answer it, and whether they meet it."""
    parts, dry = results["parts"], results["dry_run"]

    def verdict(key: str, values: list) -> str:
        values = [v for v in values if v is not None]
        if dry:
            return "n/a (dry run)"
        if not values:
            return "not measured"
        goal = GOALS[key]
        ok = [v >= goal["target"] if goal["op"] == ">=" else v <= goal["target"] for v in values]
        return "yes" if all(ok) else "no" if not any(ok) else "partly"

    pe, pc = parts.get("parity/eager", {}), parts.get("parity/compile", {})
    te, tc = parts.get("throughput/eager", {}), parts.get("throughput/compile", {})
    ee, ec = parts.get("extraction/eager", {}), parts.get("extraction/compile", {})
    headroom = parts.get("dataload/loaders_and_training", {}).get("headroom") or {}
    dann_ratio = parts.get("dann/step_cost", {}).get("ratio_dann_vs_source_only")
    lit = {"eager": median_of(pe, "lightning_img_s"), "compile": median_of(pc, "lightning_img_s")}
    return [
        {"goal": "train_img_s", "measured": {"transferlab Lightning, eager": lit["eager"],
                                             "transferlab Lightning, compile": lit["compile"],
                                             "lean loop, eager": median_of(te, "img_s"),
                                             "lean loop, compile": median_of(tc, "img_s")},
         "meets": verdict("train_img_s", [_best(lit.values())])},
        {"goal": "ratio", "measured": {"eager": pe.get("ratio"), "compile": pc.get("ratio")},
         "meets": verdict("ratio", [pe.get("ratio"), pc.get("ratio")])},
        {"goal": "extract_img_s", "measured": {"eager": median_of(ee, "img_s"), "compile": median_of(ec, "img_s"),
                                               "transferlab.extract, eager": median_of(ee, "extract_fn_img_s")},
         "meets": verdict("extract_img_s", [_best((median_of(ee, "img_s"), median_of(ec, "img_s")))])},
        {"goal": "loader_headroom", "measured": dict(headroom),
         "meets": verdict("loader_headroom", [headroom.get("on_device")])},
        {"goal": "dann_ratio", "measured": {"dann / source_only": dann_ratio},
         "meets": verdict("dann_ratio", [dann_ratio])},
        {"goal": "mfu", "measured": {"Lightning eager": pe.get("mfu_lightning"),
                                     "Lightning compile": pc.get("mfu_lightning"),
                                     "lean loop eager": te.get("mfu"), "lean loop compile": tc.get("mfu")},
         "meets": "no target (reported)"},
    ]
