"""Rank backbones for a dataset by LogME and LEEP before training any of them.

    python -m transferlab.rank data=digits 'models=[efficientnet_lite0,resnet18,efficientnet_lite0:none]'

Each entry is a ``model`` config name, ``:none`` for random weights. Other ``key=value`` arguments override the
composed config (e.g. ``data.image_size=64``). Features of the training split (no augmentation) are extracted
once per backbone. LEEP needs the source ImageNet classifier, available here for the packaged EfficientNet-Lite0
only (n/a otherwise). Writes ``rank.csv`` (or ``output=``) and prints the table, best LogME first.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import timm
import torch
from torch.utils.data import DataLoader

from transferlab.atomic import atomic_open
from transferlab.backbones import efficientnet_lite0_state_dict
from transferlab.contracts.checks import check_config
from transferlab.contracts.errors import TransferlabError
from transferlab.data.feature_cache import unaugmented
from transferlab.entry import run_script
from transferlab.experiment import instantiate, load_config
from transferlab.extract import extract
from transferlab.metrics.transferability import leep, logme


def source_classifier(name: str, weights: str) -> torch.nn.Module | None:
    """The ImageNet network with its classifier, where we have one offline (packaged Lite0), else None."""
    if name != "efficientnet_lite0" or weights == "none":
        return None
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(efficientnet_lite0_state_dict())
    return model.eval()


def score(entry: str, overrides: list[str], workdir: Path) -> dict:
    """Extract features (and source probabilities) for one model entry and score them."""
    name, _, weights = entry.partition(":")
    cfg = load_config([f"model={name}", *([f"model.weights={weights}"] if weights else []), *overrides],
                      output_dir=workdir / entry.replace(":", "_"))
    check_config(cfg)
    backbone = instantiate(cfg.model).eval()
    datamodule = instantiate(cfg.data, data_config=backbone.data_config, seed=cfg.seed)
    datamodule.setup("fit")
    train = unaugmented(datamodule.train_set, datamodule.val_set)
    classifier = source_classifier(cfg.model.get("name", name), str(cfg.model.get("weights")))

    def forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"features": backbone(images)}
        if classifier is not None:
            out["probs"] = classifier(images).softmax(-1)
        return out

    out = {key: value.numpy() for key, value in extract(forward, DataLoader(train, batch_size=64)).items()}
    return {"model": entry, "logme": logme(out["features"], out["labels"]),
            "leep": leep(out["probs"], out["labels"]) if "probs" in out else math.nan}


def rank(models: list[str], overrides: list[str], output: str = "rank.csv") -> list[dict]:
    """Score every entry of ``models``; write ``output`` sorted by LogME (best first) and return the rows."""
    if Path(output).exists():
        raise TransferlabError(f"output={output} exists; choose another file (nothing is overwritten)")
    rows = sorted((score(m, overrides, Path(output).resolve().parent / "rank_runs") for m in models),
                  key=lambda r: -r["logme"])
    with atomic_open(output, "w") as file:
        writer = csv.DictWriter(file, fieldnames=["model", "logme", "leep"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'model':32s} {'LogME':>9s} {'LEEP':>9s}")
    for row in rows:
        leep_text = "n/a" if math.isnan(row["leep"]) else f"{row['leep']:9.4f}"
        print(f"{row['model']:32s} {row['logme']:9.4f} {leep_text:>9s}")
    return rows


USAGE = "python -m transferlab.rank 'models=[name,name:none,...]' [key=value ...]"


def rank_command(argv: list[str]) -> None:
    """``rank`` from command-line arguments: ``models=[...]``, optional ``output=``, the rest config overrides."""
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
