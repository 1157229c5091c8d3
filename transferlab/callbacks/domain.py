"""Domain adaptation reports: label-free model selection against the oracle, proxy A-distance, feature embedding.

Both callbacks are in ``callbacks=default`` and act only when the module adapts domains (it has ``collect(loader)``,
as ``transferlab.strategies.DomainAdaptation`` does) and the data has a target domain; otherwise they do nothing.
``transferlab.experiment.train`` merges each callback's ``metrics_report()`` into ``metrics.json``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from transferlab.atomic import save_figure
from transferlab.metrics.validators import proxy_a_distance


def adapts_domains(trainer, pl_module) -> bool:
    """Whether this run is domain adaptation: a module with ``collect`` on data with a target domain."""
    return callable(getattr(pl_module, "collect", None)) and getattr(trainer.datamodule, "has_target_domain", False)


VALIDATORS = ("val/acc", "val/im", "val/snd", "val/neg_dev_risk")
ORACLE = "val/target_acc_oracle"
DISCRIMINATOR_WINS = 0.9  # last epoch's domain/acc at or above this: the domains stay separable
IM_COLLAPSE = 0.5  # last epoch's IM below this share of its best: target predictions collapsed
_LEGEND_CLASSES_MAX = 40  # more classes: the embedding legend shows only the domain markers


def harm_warnings(history: list[dict]) -> list[str]:
    """Label-free signs that adaptation went wrong, each with what to try (empty when none shows).

    Args:
        history: one row per epoch with ``domain/acc`` (training discriminator accuracy) and ``val/im``.
    """
    warnings = []
    domain_acc = [r["domain/acc"] for r in history if math.isfinite(r.get("domain/acc", math.nan))]
    if domain_acc and domain_acc[-1] >= DISCRIMINATOR_WINS:
        warnings.append(f"the domain discriminator won: domain/acc {domain_acc[-1]:.2f} in the last epoch (0.5 = "
                        f"domains aligned), so features were not aligned and the adversarial loss may have cost "
                        f"accuracy; compare with strategy=source_only, or try strategy.lambda_max=0.3, "
                        f"strategy.discriminator_dropout=0.5 or a lower optimizer.lr")
    im = [(r["epoch"], r["val/im"]) for r in history if math.isfinite(r.get("val/im", math.nan))]
    if len(im) > 1:
        best_epoch, best = max(im, key=lambda e: e[1])
        if best > 0 and im[-1][1] < IM_COLLAPSE * best:
            warnings.append(f"target predictions collapsed: IM fell from {best:.2f} (epoch {best_epoch}) to "
                            f"{im[-1][1]:.2f} (last epoch), i.e. target predictions became unsure or fell onto few "
                            f"classes; select on val/im (monitor=val/im) or compare with strategy=source_only")
    return warnings


class ValidatorSelection(L.Callback):
    """After each validation, record every validator and the accuracy on the labelled target test split.

    It also records each epoch's training ``domain/acc``, and ``metrics_report()`` lists ``warnings`` when the
    discriminator won or IM collapsed (``harm_warnings``); they are printed at the end of fitting.

    The target test accuracy is recorded, never used: ``metrics_report()`` gives, for each label-free validator,
    the epoch it would select (its maximum) and the target test accuracy at that epoch, beside the oracle's choice
    (the epoch of best target *validation* accuracy) and the best target test accuracy of any epoch, which is what
    selecting on test labels (as TLlib does) would report. The history is in the checkpoint, so it survives resume.
    """

    def __init__(self, validators=VALIDATORS):
        self.validators = list(validators)
        self.history: list[dict[str, float]] = []
        self.active = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.active = adapts_domains(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.active:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k: float(trainer.callback_metrics[k]) for k in (*self.validators, ORACLE)
                    if k in trainer.callback_metrics})
        loader = trainer.datamodule.target_test_dataloader()
        if loader is not None:
            out = pl_module.collect(loader)
            row["target_test_acc"] = float((out["probs"].argmax(1) == out["labels"]).float().mean())
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.active:
            return
        value = trainer.callback_metrics.get("domain/acc")  # this epoch's (logged on_epoch by the strategy)
        row = next((r for r in self.history if r["epoch"] == trainer.current_epoch), None)
        if value is not None and row is not None:
            row["domain/acc"] = float(value)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.active:
            for warning in harm_warnings(self.history):
                print(f"transferlab: warning: {warning}", file=sys.stderr)

    def metrics_report(self) -> dict:
        if not self.history:
            return {}
        chosen = {}
        for key in (*self.validators, ORACLE):
            rows = [r for r in self.history if key in r and math.isfinite(r[key])]
            if rows:
                best = max(rows, key=lambda r: r[key])  # first epoch among ties
                chosen[key] = {"epoch": best["epoch"], "value": best[key],
                               "target_test_acc": best.get("target_test_acc", math.nan)}
        accs = [r["target_test_acc"] for r in self.history if "target_test_acc" in r]
        report = {"selection": chosen, "warnings": harm_warnings(self.history), "history": self.history}
        if accs:
            report["target_test_acc_last"] = accs[-1]
            report["target_test_acc_best_epoch_cheating"] = max(accs)
        return {"domain_adaptation": report}

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        # Merged by epoch: ``trainer.test(ckpt_path="best")`` loads an older checkpoint after fitting.
        rows = {r["epoch"]: r for r in state_dict.get("history", [])} | {r["epoch"]: r for r in self.history}
        self.history = [rows[e] for e in sorted(rows)]


class DomainReport(L.Callback):
    """Proxy A-distance of source vs target features at the start and end of fitting, and a 2-D embedding.

    Features are the module's bottleneck features of the source and target validation splits. The embedding
    (t-SNE or PCA) is drawn twice, coloured by domain and by class (target classes only where labels exist), and
    saved as ``<dirpath>/embedding.png`` and to TensorBoard (tag ``fit/embedding``). Only global rank 0 computes.

    Args:
        dirpath: folder of the PNG; ``None`` = ``<trainer.default_root_dir>/figures``.
        method: ``"tsne"`` or ``"pca"``.
        max_samples: points per domain.
    """

    def __init__(self, dirpath: str | Path | None = None, method: str = "tsne", max_samples: int = 500):
        if method not in ("tsne", "pca"):
            raise ValueError(f"method={method!r} must be tsne or pca")
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.method, self.max_samples = method, int(max_samples)
        self.report: dict[str, float] = {}
        self.active = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.active = adapts_domains(trainer, pl_module)

    def _features(self, trainer, pl_module) -> tuple[dict, dict]:
        datamodule = trainer.datamodule
        datamodule.setup("fit")
        source_loader, target_loader = datamodule.val_dataloader()[:2]
        return (pl_module.collect(source_loader, self.max_samples), pl_module.collect(target_loader, self.max_samples))

    def _log(self, trainer, name: str, value: float) -> None:
        self.report[name] = value
        for logger in trainer.loggers:
            logger.log_metrics({name: value}, step=trainer.global_step)

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.active:
            source, target = self._features(trainer, pl_module)
            self._log(trainer, "domain/pad_start", proxy_a_distance(source["features"], target["features"]))

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not self.active:
            return
        source, target = self._features(trainer, pl_module)
        self._log(trainer, "domain/pad_end", proxy_a_distance(source["features"], target["features"]))
        figure = self.embedding_figure(source, target, getattr(trainer.datamodule, "class_names", None))
        out = self.dirpath if self.dirpath is not None else Path(trainer.default_root_dir) / "figures"
        out.mkdir(parents=True, exist_ok=True)
        save_figure(figure, out / "embedding.png", dpi=100, bbox_inches="tight")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("fit/embedding", figure, global_step=trainer.global_step)
                logger.experiment.flush()

    def embedding_figure(self, source: dict, target: dict, class_names: list[str] | None = None) -> Figure:
        """Two scatter panels of the 2-D embedding: by domain, and by class with a legend of class colours.

        Args:
            source, target: ``collect`` outputs with ``features`` (N, D) and ``labels`` (N,; -1 = unlabelled).
            class_names: legend labels of the classes; ``None`` (or too few) = class indices.
        """
        features = torch.cat([source["features"], target["features"]]).numpy()
        if self.method == "tsne":
            points = TSNE(2, init="pca", perplexity=min(30.0, (len(features) - 1) / 3), random_state=0)
            points = points.fit_transform(features)
        else:
            points = PCA(2, random_state=0).fit_transform(features)
        n, method = len(source["features"]), {"tsne": "t-SNE", "pca": "PCA"}[self.method]
        labels = torch.cat([source["labels"], target["labels"]]).numpy()
        fig = Figure(figsize=(13, 5.5), layout="constrained")
        by_domain, by_class = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        by_domain.scatter(*points[:n].T, s=6, c="tab:blue", label="source", alpha=0.6)
        by_domain.scatter(*points[n:].T, s=6, c="tab:red", label="target", alpha=0.6)
        by_domain.legend(markerscale=3, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="domain")
        by_domain.set_title("by domain")
        num_classes = max(int(labels.max()) + 1, len(class_names or ()), 1)
        names = [str(c) for c in (class_names if class_names and len(class_names) >= num_classes
                                  else range(num_classes))]
        cmap = colormaps["tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "turbo"]
        colours = cmap(np.arange(num_classes) if num_classes <= 20 else np.linspace(0, 1, num_classes))
        known, is_target = labels >= 0, np.arange(len(points)) >= n
        for marker, mask in (("o", known & ~is_target), ("x", known & is_target)):
            by_class.scatter(*points[mask].T, s=8, c=colours[labels[mask]], marker=marker, alpha=0.7)
        handles = [Line2D([], [], ls="", marker="s", color=colours[c], label=names[c][:16])
                   for c in (range(num_classes) if num_classes <= _LEGEND_CLASSES_MAX else ())]
        handles += [Line2D([], [], ls="", marker=m, color="dimgray", label=f"{d} ({m})")
                    for m, d in (("o", "source"), ("x", "target"))]
        by_class.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                        title="class / domain", ncol=math.ceil(len(handles) / 22))
        unlabelled = int((~known).sum())
        by_class.set_title("by class" + (f" ({unlabelled} unlabelled not shown)" if unlabelled else ""))
        for ax in (by_domain, by_class):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{method} of bottleneck features, validation splits: {n} source, {len(points) - n} target")
        return fig

    def metrics_report(self) -> dict:
        return dict(self.report)
