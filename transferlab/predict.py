"""Classify images with a trained checkpoint and write a CSV of top-k classes and probabilities.

    python -m transferlab.predict ckpt=<run folder>/checkpoints/last.ckpt input=photos/ [output=...] [topk=5]

The CSV goes to ``outputs/predictions.csv`` unless ``output=`` says otherwise; an existing file is never overwritten.
The module is rebuilt from the run folder's ``.hydra/config.yaml`` (next to ``checkpoints/``); images are
preprocessed with the checkpoint's ``data_config`` and the eval transform at the run's ``data.image_size``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from transferlab.atomic import atomic_open, write_text
from transferlab.contracts.errors import TransferlabError
from transferlab.data.imagefolder import find_image_files, load_rgb
from transferlab.data.transforms import eval_transform
from transferlab.entry import parse_key_values, run_script
from transferlab.experiment import load_module


def image_paths(source: str | Path) -> list[str]:
    """One image file, or every image under a folder (recursively)."""
    source = Path(source)
    if source.is_file():
        return [str(source)]
    if not source.is_dir():
        raise TransferlabError(f"input={source} does not exist")
    paths = sorted(find_image_files(str(source), IMG_EXTENSIONS))
    if not paths:
        raise TransferlabError(f"input={source} has no images ({' '.join(IMG_EXTENSIONS)})")
    return paths


def decode(paths: list[str], transform, on_corrupt: str, skipped: list[str]) -> tuple[list[str], list]:
    """The readable ``paths`` and their transformed images; unreadable ones stop the run, or are appended to
    ``skipped`` when ``on_corrupt`` is ``skip``."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(transform(load_rgb(path)))
            kept.append(path)
        except TransferlabError as err:
            if on_corrupt != "skip":
                raise TransferlabError(f"{str(err).split('; delete')[0]}; delete or replace it, or pass "
                                       f"on_corrupt=skip to predict the other images") from None
            skipped.append(path)
    return kept, images


DEFAULT_OUTPUT = "outputs/predictions.csv"


@torch.no_grad()
def predict(ckpt: str, input: str, output: str = DEFAULT_OUTPUT, topk: int = 5, batch_size: int = 32,
            on_corrupt: str = "error") -> Path:
    """Write ``output`` with one row per image: path, then ``class_i``/``prob_i`` for the top ``topk``.

    A multi-task checkpoint gets one column set per task, prefixed ``<task>_`` (see ``task_columns``). With
    ``on_corrupt=skip`` unreadable images are left out with a warning and listed in ``<output>.skipped.txt``.
    """
    output = Path(output)
    if output.exists():
        raise TransferlabError(f"output={output} exists; choose another file with output=... (nothing is "
                               f"overwritten)")
    if on_corrupt not in ("error", "skip"):
        raise TransferlabError(f"on_corrupt={on_corrupt!r} must be error or skip")
    if not str(topk).strip().isdigit():
        raise TransferlabError(f"topk={topk!r} must be a whole number (e.g. topk=5)")
    module, names, data_config, cfg = load_module(ckpt)
    transform = eval_transform(data_config, cfg.data.get("image_size"))
    paths, rows, skipped = image_paths(input), [], []
    for start in range(0, len(paths), batch_size):
        chunk, images = decode(paths[start:start + batch_size], transform, on_corrupt, skipped)
        if not chunk:
            continue
        outputs = module.predict_step(torch.stack(images), 0)
        if isinstance(names, dict):  # multi-task: one column set per task, prefixed with its name
            heads = [(outputs[task], names[task], module.specs[task]["kind"], f"{task}_") for task in names]
        else:
            heads = [(outputs, names, "multiclass", "")]
        columns = [task_columns(out, head_names, kind, int(topk), prefix) for out, head_names, kind, prefix in heads]
        rows += [{"path": path, **{k: v for cells in per_head for k, v in cells.items()}}
                 for path, per_head in zip(chunk, zip(*columns))]
    if skipped:
        print(f"transferlab: warning: skipped {len(skipped)} unreadable image(s), listed in {output}.skipped.txt",
              file=sys.stderr)
        write_text(f"{output}.skipped.txt", "".join(f"{path}\n" for path in skipped))
    if not rows:
        raise TransferlabError(f"input={input}: no readable image; nothing to predict")
    with atomic_open(output, "w") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return output


def task_columns(outputs: torch.Tensor, names: list[str], kind: str, topk: int, prefix: str = "") -> list[dict]:
    """One dict of CSV cells per image for one head's activated outputs (``predict_step``'s).

    multiclass: ``class_i``/``prob_i`` for the top ``topk``; multilabel: ``prob_<name>`` for every label;
    regression: ``value`` (or ``value_<i>`` for several outputs).
    """
    if kind == "multiclass":
        top = outputs.topk(max(1, min(topk, len(names))), dim=-1)
        return [{k: v for i, (p, c) in enumerate(zip(values, indices), 1)
                 for k, v in ((f"{prefix}class_{i}", names[c]), (f"{prefix}prob_{i}", f"{p:.6f}"))}
                for values, indices in zip(top.values.tolist(), top.indices.tolist())]
    if kind == "multilabel":
        return [{f"{prefix}prob_{name}": f"{p:.6f}" for name, p in zip(names, row)} for row in outputs.tolist()]
    keys = [f"{prefix}value"] if outputs.shape[-1] == 1 else [f"{prefix}value_{i}" for i in range(outputs.shape[-1])]
    return [{k: f"{v:.6f}" for k, v in zip(keys, row)} for row in outputs.reshape(len(outputs), -1).tolist()]


KEYS, REQUIRED = {"ckpt", "input", "output", "topk", "on_corrupt"}, {"ckpt", "input"}
USAGE = "python -m transferlab.predict ckpt=... input=<folder|image> [output=...] [topk=5] [on_corrupt=error|skip]"
DETAILS = f"""
Classify images with a trained checkpoint and write a CSV of top-k classes and probabilities.

  ckpt=PATH        a checkpoint inside its run folder, e.g. outputs/runs/<run>/checkpoints/last.ckpt
  input=PATH       one image, or a folder of images (searched recursively)
  output=PATH      the CSV to write (default {DEFAULT_OUTPUT}); an existing file is never overwritten
  topk=N           classes per image (default 5)
  on_corrupt=MODE  error (default): an unreadable image stops it; skip: predict the others and list the
                   unreadable ones in <output>.skipped.txt
"""


def main(argv: list[str] | None = None) -> int:
    return run_script(lambda args: print(f"wrote {predict(**parse_key_values(args, KEYS, REQUIRED, USAGE, DETAILS))}"),
                      argv)


if __name__ == "__main__":
    sys.exit(main())
