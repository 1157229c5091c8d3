"""Rank backbones for a dataset by LogME and LEEP before training any of them.

    python -m transferlab.rank data=digits 'models=[efficientnet_lite0,resnet18,efficientnet_lite0:none]'

Each entry is a ``model`` config name, ``:none`` for random weights. Other ``key=value`` arguments override the
composed config (e.g. ``data.image_size=64``). Features of the training split (no augmentation) are extracted
once per backbone. LEEP needs the source ImageNet classifier, available here for the packaged EfficientNet-Lite0
only (n/a otherwise). Writes ``outputs/rank/rank.csv`` (or ``output=``; an existing file is never overwritten) and
prints the table, best LogME first. Each entry's composed config goes to ``<output folder>/<output name>_runs/<entry>/``
(``outputs/rank/rank_runs/`` by default).

A model whose weights cannot be had (a torchvision model offline, its file not in the torch hub cache) is skipped
with one ``transferlab: warning:`` line; the others are ranked, and the CSV lists it last with empty scores and the
reason in its ``note`` column. A misspelt model or a bad override stops the ranking before any features are extracted.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import timm
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from transferlab.atomic import atomic_open
from transferlab.backbones import efficientnet_lite0_state_dict
from transferlab.contracts.checks import check_config
from transferlab.contracts.errors import TransferlabError, one_line
from transferlab.data.feature_cache import unaugmented
from transferlab.entry import check_help, run_script
from transferlab.experiment import instantiate, load_config, seed
from transferlab.extract import extract
from transferlab.metrics.transferability import leep, logme


def source_classifier(name: str, weights: str) -> torch.nn.Module | None:
    """The ImageNet network with its classifier, where we have one offline (packaged Lite0), else None."""
    if name != "efficientnet_lite0" or weights == "none":
        return None
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(efficientnet_lite0_state_dict())
    return model.eval()


def compose(entry: str, overrides: list[str], runs: Path) -> DictConfig:
    """The checked config of one model entry (``name`` or ``name:weights``), saved in ``runs/<entry>``."""
    name, _, weights = entry.partition(":")
    cfg = load_config([f"model={name}", *([f"model.weights={weights}"] if weights else []), *overrides],
                      output_dir=runs / entry.replace(":", "_"))
    check_config(cfg)
    return cfg


def score(entry: str, cfg: DictConfig, backbone: torch.nn.Module) -> dict:
    """Extract features (and source probabilities) for one model entry and score them."""
    backbone = backbone.eval()
    datamodule = instantiate(cfg.data, data_config=backbone.data_config, seed=cfg.seed)
    datamodule.setup("fit")
    train = unaugmented(datamodule.train_set, datamodule.val_set)
    classifier = source_classifier(cfg.model.get("name", entry.partition(":")[0]), str(cfg.model.get("weights")))

    def forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"features": backbone(images)}
        if classifier is not None:
            out["probs"] = classifier(images).softmax(-1)
        return out

    out = {key: value.numpy() for key, value in extract(forward, DataLoader(train, batch_size=64)).items()}
    return {"model": entry, "logme": logme(out["features"], out["labels"]),
            "leep": leep(out["probs"], out["labels"]) if "probs" in out else math.nan, "note": ""}


DEFAULT_OUTPUT = "outputs/rank/rank.csv"


def rank(models: list[str], overrides: list[str], output: str = DEFAULT_OUTPUT) -> list[dict]:
    """Score every entry of ``models``; write ``output`` sorted by LogME (best first) and return the rows.

    An entry whose backbone cannot be built (weights missing offline, an unreadable weights file) is skipped with a
    warning and listed last, with empty scores and the reason in ``note``; if every entry is skipped, nothing is
    written and that is the error.
    """
    output = Path(output)
    if output.exists():
        raise TransferlabError(f"output={output} exists; choose another file with output=... (nothing is "
                               f"overwritten)")
    runs = output.resolve().parent / f"{output.stem}_runs"
    configs = [(entry, compose(entry, overrides, runs)) for entry in models]  # a typo stops here, before extraction
    rows, skipped = [], []
    for entry, cfg in configs:
        try:
            seed(cfg)  # random weights (model.weights=none) are the seed's, not the order of the entries
            backbone = instantiate(cfg.model)
        except TransferlabError as err:
            reason = one_line(err)
            print(f"transferlab: warning: skipped {entry}: {reason}", file=sys.stderr)
            skipped.append({"model": entry, "logme": "", "leep": "", "note": f"skipped: {reason}"})
            continue
        rows.append(score(entry, cfg, backbone))
    if not rows:
        raise TransferlabError(f"no model could be scored ({', '.join(models)} skipped, see the warnings above); "
                               f"no CSV written")
    rows = sorted(rows, key=lambda r: -r["logme"]) + skipped
    with atomic_open(output, "w") as file:
        writer = csv.DictWriter(file, fieldnames=["model", "logme", "leep", "note"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'model':32s} {'LogME':>9s} {'LEEP':>9s}")
    for row in rows:
        if row["note"]:
            print(f"{row['model']:32s} {'skipped':>9s} {'':>9s} ({row['note'].removeprefix('skipped: ')})")
            continue
        leep_text = "n/a" if math.isnan(row["leep"]) else f"{row['leep']:9.4f}"
        print(f"{row['model']:32s} {row['logme']:9.4f} {leep_text:>9s}")
    print(f"wrote {output}")
    return rows


USAGE = "python -m transferlab.rank 'models=[name,name:none,...]' [output=...] [key=value ...]"
DETAILS = f"""
Rank backbones for a dataset by LogME and LEEP before training any of them.

  models=[...]   model config names (conf/model), name:none for random weights, e.g.
                 'models=[efficientnet_lite0,resnet18,efficientnet_lite0:none]'
  output=PATH    the CSV to write (default {DEFAULT_OUTPUT}); an existing file is never overwritten
  key=value      any other config override, e.g. data=digits data.image_size=64

A model whose weights are not available (offline, not in the torch hub cache) is skipped with a warning and listed
in the CSV with empty scores and the reason in its note column.
"""


def rank_command(argv: list[str]) -> None:
    """``rank`` from command-line arguments: ``models=[...]``, optional ``output=``, the rest config overrides."""
    check_help(argv, USAGE, DETAILS)
    models = [a for a in argv if a.startswith("models=")]
    output = [a.partition("=")[2] for a in argv if a.startswith("output=")]
    if len(models) != 1:
        raise TransferlabError(f"usage: {USAGE}")
    names = [m.strip() for m in models[0].partition("=")[2].strip("[]").split(",") if m.strip()]
    rank(names, [a for a in argv if not a.startswith(("models=", "output="))], *output)


def main(argv: list[str] | None = None) -> int:
    return run_script(rank_command, argv)


if __name__ == "__main__":
    sys.exit(main())
