"""Export a trained checkpoint for use outside transferlab: safetensors weights or an ONNX graph, plus a JSON sidecar.

    python -m transferlab.export ckpt=outputs/runs/<run>/checkpoints/last.ckpt format=onnx [output=model.onnx]

The sidecar (``<output>.json``) holds the class names (``{task: names}`` and one output per task for a multi-task
model), the preprocessing (``data_config`` and image size) and the
backbone name. An ONNX file is checked with onnxruntime against the PyTorch logits before it is kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from transferlab.atomic import atomic_open, write_text
from transferlab.contracts.errors import TransferlabError
from transferlab.entry import parse_key_values, run_script
from transferlab.experiment import load_module

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx"}


def export(ckpt: str, format: str = "onnx", output: str | None = None, atol: float = 1e-4) -> Path:
    """Write ``output`` (default: next to the checkpoint) and ``output.json``; return the model file's path."""
    if format not in FORMATS:
        raise TransferlabError(f"format={format} is not one of {', '.join(FORMATS)}")
    output = Path(output or Path(ckpt).with_suffix(FORMATS[format]))
    sidecar = output.with_name(output.name + ".json")
    for path in (output, sidecar):
        if path.exists():
            raise TransferlabError(f"{path} exists; choose another output= (nothing is overwritten)")
    module, names, data_config, cfg = load_module(ckpt)
    size = int(cfg.data.get("image_size") or data_config.input_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "safetensors":
        from safetensors.torch import save

        with atomic_open(output) as handle:
            handle.write(save({k: v.contiguous() for k, v in module.state_dict().items()}))
    else:
        write_onnx(module, output, size, atol)
    about = {"class_names": names, "backbone": module.backbone.name, "image_size": size,
             "data_config": data_config.to_dict(), "input": "float32 NCHW, normalised", "output": "logits"}
    if isinstance(names, dict):  # multi-task: one output per task, in this order
        about.update(output={task: f"logits_{task} ({module.specs[task]['kind']})" for task in names})
    write_text(sidecar, json.dumps(about, indent=2))
    return output


class TaskOutputs(torch.nn.Module):
    """A multi-task module's ``{task: logits}`` as a tuple (ONNX graphs have positional outputs)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module, self.tasks = module, list(module.specs)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.module(images)
        return tuple(outputs[task] for task in self.tasks)


def write_onnx(module: torch.nn.Module, output: Path, size: int, atol: float) -> None:
    """``torch.onnx.export`` with a dynamic batch, verified with onnxruntime against PyTorch (``atol``)."""
    import onnxruntime

    names = ["logits"]
    if hasattr(module, "specs"):  # multi-task
        module = TaskOutputs(module).eval()  # export restores .train(), which would reach the inner module
        names = [f"logits_{task}" for task in module.tasks]
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with atomic_open(output) as handle:
        torch.onnx.export(module, (example,), handle, input_names=["images"], output_names=names,
                          dynamic_axes={name: {0: "batch"} for name in ["images", *names]}, dynamo=False)
    with torch.no_grad():
        expected = module(example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = onnxruntime.InferenceSession(str(output)).run(None, {"images": example.numpy()})
    error = max(float(abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    if error > atol:
        output.unlink()
        raise TransferlabError(f"ONNX logits differ from PyTorch by {error:.2e} (> {atol}); not exported")


KEYS, REQUIRED = {"ckpt", "format", "output"}, {"ckpt"}
USAGE = "python -m transferlab.export ckpt=... format=onnx|safetensors [output=...]"


def main(argv: list[str] | None = None) -> int:
    return run_script(lambda args: print(f"wrote {export(**parse_key_values(args, KEYS, REQUIRED, USAGE))}"), argv)


if __name__ == "__main__":
    sys.exit(main())
