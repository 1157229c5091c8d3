"""Export a trained checkpoint for use outside transferlab: safetensors weights or an ONNX graph, plus a JSON sidecar.

    python -m transferlab.export ckpt=outputs/runs/<run>/checkpoints/last.ckpt format=onnx [output=model.onnx]

The sidecar (``<output>.json``) holds the class names (``{task: names}`` and one output per task for a multi-task
model), the preprocessing (``data_config``, whose ``input_size`` is the size the model was trained and traced at) and
the backbone name. An ONNX file is checked with onnxruntime against the PyTorch logits before it is kept; ONNX needs
the ``onnx`` and ``onnxruntime`` packages (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import torch

from transferlab.atomic import atomic_open, write_text
from transferlab.contracts.errors import TransferlabError
from transferlab.entry import parse_key_values, run_script
from transferlab.experiment import load_module

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx"}
ONNX_PACKAGES = ("onnx", "onnxruntime")  # torch.onnx.export needs onnx; the check needs onnxruntime


def check_onnx_packages() -> None:
    """A one-line error naming the missing package(s) unless ``onnx`` and ``onnxruntime`` import."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise TransferlabError(f"format=onnx needs the {' and '.join(missing)} package{'s' * (len(missing) > 1)}, "
                               f"not installed here: pip install onnx onnxruntime onnxscript (or pip install -e "
                               f"\".[dev]\"), or export format=safetensors")


def export(ckpt: str, format: str = "onnx", output: str | None = None, atol: float = 1e-4) -> Path:
    """Write ``output`` (default: next to the checkpoint) and ``output.json``; return the model file's path."""
    if format not in FORMATS:
        raise TransferlabError(f"format={format} is not one of {', '.join(FORMATS)}")
    output = Path(output or Path(ckpt).with_suffix(FORMATS[format]))
    sidecar = output.with_name(output.name + ".json")
    for path in (output, sidecar):
        if path.exists():
            raise TransferlabError(f"{path} exists; choose another output= (nothing is overwritten)")
    if format == "onnx":
        check_onnx_packages()
    module, names, data_config, cfg = load_module(ckpt)
    size = int(cfg.data.get("image_size") or data_config.input_size)
    if format == "safetensors":
        from safetensors.torch import save

        with atomic_open(output) as handle:
            handle.write(save({k: v.contiguous() for k, v in module.state_dict().items()}))
    else:
        write_onnx(module, output, size, atol)
    preprocessing = {**data_config.to_dict(), "input_size": size}  # the size trained and traced at, not the weights'
    about = {"class_names": names, "backbone": module.backbone.name, "data_config": preprocessing,
             "input": "float32 NCHW, normalised", "output": "logits"}
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
DETAILS = """
Export a trained checkpoint as an ONNX graph or safetensors weights, with a JSON sidecar (<output>.json) of class
names and preprocessing.

  ckpt=PATH     a checkpoint inside its run folder, e.g. outputs/runs/<run>/checkpoints/last.ckpt
  format=NAME   onnx (default; needs pip install onnx onnxruntime) or safetensors
  output=PATH   the file to write (default: beside the checkpoint, e.g. last.onnx); existing files are never
                overwritten
"""


def main(argv: list[str] | None = None) -> int:
    return run_script(lambda args: print(f"wrote {export(**parse_key_values(args, KEYS, REQUIRED, USAGE, DETAILS))}"),
                      argv)


if __name__ == "__main__":
    sys.exit(main())
