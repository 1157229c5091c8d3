"""Evaluate a trained checkpoint on any data: metrics.json, figures and, for domain adaptation, PAD and an embedding.

    python -m transferlab.eval ckpt=outputs/runs/<run>/checkpoints/best-epoch004.ckpt        # the run's own test split
    python -m transferlab.eval ckpt=... data=domain_pair data.source=/data/a data.target=/data/new_site
    python -m transferlab.eval ckpt=... folder=/data/new_site      # every image of <folder>/<class>/*.jpg

The config is the run's own (its ``.hydra/overrides.yaml`` recomposed) with the given overrides on top; an override of
a group (``data=...``) replaces the run's keys of that group. Results go to ``<run>/eval/<date_time>/`` (or
``output_dir=``): ``config.yaml``, ``metrics.json`` (``status``, ``test``, ``checkpoint``, ``data``), ``figures/``
(confusion matrix, predictions and, for two-domain data, ``embedding.png``) and ``tensorboard/``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from transferlab.atomic import save_figure, write_text
from transferlab.callbacks.domain import DomainReport
from transferlab.callbacks.figures import EvaluationFigures
from transferlab.contracts.errors import TransferlabError
from transferlab.data.imagefolder import ImageFolderDataset
from transferlab.data.transforms import eval_transform
from transferlab.entry import check_help, run_script
from transferlab.experiment import final_metrics, instantiate, load_config, load_module, strict_json
from transferlab.metrics.validators import proxy_a_distance
from transferlab.report import summary

OWN_KEYS = ("ckpt", "folder", "output_dir")
USAGE = "python -m transferlab.eval ckpt=PATH [folder=DIR | data=... data.KEY=...] [output_dir=DIR] [trainer=gpu]"
DETAILS = """
Test a trained checkpoint and write metrics.json and figures into a new folder.

  ckpt=PATH        a checkpoint inside its run folder, e.g. outputs/runs/<run>/checkpoints/best-epoch004.ckpt
  folder=DIR       evaluate every image of DIR/<class>/*; class folders are matched to the model's classes by name
  data=..., data.KEY=..., trainer=...
                   any override of the run's config: the test split(s) of that data are evaluated (default: the
                   run's own data); for two-domain data also the proxy A-distance and a feature embedding
  output_dir=DIR   where to write (default <run folder>/eval/<date_time>); a folder holding a run is refused
"""


class FolderTestData(L.LightningDataModule):
    """Every image of ``root/<class>/*`` as a test set, labelled with the model's own class indices."""

    def __init__(self, root: str, class_names: list[str], data_config, image_size: int | None, batch_size: int = 32):
        super().__init__()
        self.class_names, self.data_config, self.batch_size = list(class_names), data_config, int(batch_size)
        if not Path(root).is_dir():
            raise TransferlabError(f"folder={root} is not a folder (expected <folder>/<class>/*.jpg)")
        self.dataset = ImageFolderDataset(root, transform=eval_transform(data_config, image_size))
        unknown = sorted(set(self.dataset.classes) - set(self.class_names))
        if unknown:
            raise TransferlabError(f"folder={root}: class folder(s) {', '.join(unknown)} are not among the model's "
                                   f"classes ({', '.join(self.class_names)}); remove them or rename them")
        index = {name: self.class_names.index(name) for name in self.dataset.classes}
        self.dataset.samples = [(path, index[self.dataset.classes[label]]) for path, label in self.dataset.samples]
        self.dataset.targets = [label for _, label in self.dataset.samples]

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)


def merged_overrides(saved: list[str], given: list[str]) -> list[str]:
    """The run's overrides with ``given`` on top: a given key replaces the saved one, a given group (``data=x``)
    every saved key under it."""
    keys = {override.split("=", 1)[0].lstrip("+~") for override in given}

    def replaced(override: str) -> bool:
        key = override.split("=", 1)[0].lstrip("+~")
        return key in keys or any(key.startswith(f"{group}.") for group in keys) or key == "resume"

    return [o for o in saved if not replaced(o) and not o.startswith("hydra.")] + list(given)


def run_overrides(ckpt: str) -> list[str]:
    saved = Path(ckpt).resolve().parent.parent / ".hydra" / "overrides.yaml"
    return list(OmegaConf.load(saved)) if saved.is_file() else []


def domain_analysis(module, datamodule, out: Path, max_samples: int = 500) -> dict:
    """Proxy A-distance between source and target test features (target validation images when the target is
    unlabelled) and the embedding figure, for a module that adapts domains on two-domain data."""
    target_loader = datamodule.target_test_dataloader() or datamodule.val_dataloader()[1]
    source = module.collect(datamodule.test_dataloader()[0], max_samples)
    target = module.collect(target_loader, max_samples)
    save_figure(DomainReport(method="tsne").embedding_figure(source, target), out / "figures" / "embedding.png",
                dpi=100, bbox_inches="tight")
    return {"domain/pad": proxy_a_distance(source["features"], target["features"])}


def evaluate(ckpt: str, overrides: list[str] = (), folder: str | None = None, output_dir: str | None = None) -> Path:
    """Test ``ckpt`` on ``folder`` or on the (overridden) run's data; return the folder the results went to."""
    start = time.perf_counter()
    module, names, data_config, _ = load_module(ckpt)
    if isinstance(names, dict):
        raise TransferlabError(f"ckpt={ckpt}: multi-task checkpoints are evaluated with predict, not eval (yet)")
    run_dir = Path(ckpt).resolve().parent.parent
    out = Path(output_dir or run_dir / "eval" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f"))
    cfg = load_config(merged_overrides(run_overrides(ckpt), list(overrides)), output_dir=out)
    if folder is not None:
        datamodule = FolderTestData(folder, names, data_config, cfg.data.get("image_size"), cfg.data.batch_size)
    else:
        datamodule = instantiate(cfg.data, data_config=data_config, seed=cfg.seed)
        datamodule.setup("test")
        if list(datamodule.class_names) != list(names):
            raise TransferlabError(f"the data's classes ({', '.join(map(str, datamodule.class_names))}) are not the "
                                   f"model's ({', '.join(names)}); evaluate on data with the same class folders")
    trainer = instantiate(cfg.trainer, devices=1, strategy="auto", default_root_dir=str(out),  # the run's settings
                          logger=TensorBoardLogger(out, name="tensorboard", version=""), enable_checkpointing=False,
                          callbacks=[EvaluationFigures(dirpath=out / "figures")])
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = final_metrics(trainer)
    if folder is not None:  # one loader: a DA module names it "source"; here it is just this folder
        metrics = {key.replace("test/source_", "test/"): value for key, value in metrics.items()}
    if getattr(datamodule, "has_target_domain", False) and callable(getattr(module, "collect", None)):
        metrics.update(domain_analysis(module, datamodule, out))
    payload = {"status": "completed", "test": metrics, "checkpoint": str(Path(ckpt).resolve()),
               "data": {"folder": str(Path(folder).resolve())} if folder else OmegaConf.to_container(cfg.data),
               "seconds": round(time.perf_counter() - start, 2)}
    write_text(out / "metrics.json", json.dumps(strict_json(payload), indent=2, default=str, allow_nan=False))
    print(f"eval completed\n{summary({**payload, 'best': {'value': None}}, out)}")
    return out


def script(argv: list[str]) -> None:
    check_help(argv, USAGE, DETAILS)
    own = {arg.split("=", 1)[0]: arg.split("=", 1)[1] for arg in argv if arg.split("=", 1)[0] in OWN_KEYS}
    if "ckpt" not in own or any("=" not in arg for arg in argv):
        raise TransferlabError(f"usage: {USAGE}")
    overrides = [arg for arg in argv if arg.split("=", 1)[0] not in OWN_KEYS]
    if own.get("folder") and any(o.split("=", 1)[0].lstrip("+~").split(".")[0] == "data" for o in overrides):
        raise TransferlabError("give folder= or data overrides, not both")
    evaluate(own["ckpt"], overrides, own.get("folder"), own.get("output_dir"))


def cli() -> int:
    """The ``transferlab-eval`` console script (= ``python -m transferlab.eval``)."""
    return run_script(script)


if __name__ == "__main__":
    sys.exit(cli())
