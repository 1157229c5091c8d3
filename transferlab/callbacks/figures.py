"""Test-time figures: a confusion matrix and a grid of predictions, logged to TensorBoard and saved as PNG/CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torchmetrics.classification import MulticlassConfusionMatrix

from transferlab.atomic import atomic_open, save_figure

_ANNOTATE_MAX, _TICKS_MAX = 20, 60
_WRONG, _RIGHT = "red", "green"
# Test loaders of two-domain data (``has_target_domain``): source test (0), then the labelled target's (1).
_TEST_DOMAINS = ("source", "target")


class EvaluationFigures(L.Callback):
    """Draw a confusion matrix and a prediction grid at the end of ``trainer.test``.

    The LightningModule's ``test_step`` must return ``{"loss", "logits": (N, C), "target": (N,)}`` and batches must
    be ``(images, targets)`` (or ``test_step`` also returns the ``"images"`` of those rows, e.g. when it drops
    unlabelled ones). Class names come from ``trainer.datamodule.class_names`` and images are un-normalised
    with ``trainer.datamodule.data_config.mean/std`` when present (otherwise min-max scaled). The confusion matrix is
    synced across DDP ranks; only global rank 0 draws. Figures go to every ``TensorBoardLogger`` (tags
    ``test/confusion_matrix`` and ``test/predictions``) and to ``dirpath`` as ``confusion_matrix.png``,
    ``predictions.png`` and ``confusion_matrix.csv`` (raw counts, rows = true class, columns = predicted class).

    Titles name the split and, when the datamodule has a target domain (``has_target_domain``), the domain of the
    test loader whose outputs were drawn (loader 0 = source, 1 = labelled target), with the number of images and the
    accuracy. The grid shows wrong predictions (red) before right ones (green).

    Args:
        dirpath: folder for the files; ``None`` means ``<trainer.default_root_dir>/figures``.
        max_images: how many test images the prediction grid shows: the first wrong ones seen, then the first right
            ones to fill it; 0 disables it.
        normalize_confusion: row-normalise the plotted matrix (cells then show the share and the count; the CSV
            always holds counts).

    Example:
        >>> trainer = L.Trainer(callbacks=[EvaluationFigures(max_images=16)])  # doctest: +SKIP
        >>> trainer.test(model, datamodule=dm)  # doctest: +SKIP
    """

    def __init__(self, dirpath: str | Path | None = None, max_images: int = 32, normalize_confusion: bool = True):
        if max_images < 0:
            raise ValueError(f"max_images={max_images} must be >= 0")
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.max_images, self.normalize_confusion = int(max_images), bool(normalize_confusion)
        self._confmat: MulticlassConfusionMatrix | None = None
        self._errors: list[tuple[torch.Tensor, int, int, float]] = []  # (image, pred, true, confidence)
        self._correct: list[tuple[torch.Tensor, int, int, float]] = []
        self._loaders: set[int] = set()

    @property
    def shown(self) -> list[tuple[torch.Tensor, int, int, float]]:
        """The prediction grid's ``(image, pred, true, confidence)``: errors first, at most ``max_images``."""
        return (self._errors + self._correct)[: self.max_images]

    # --- collection ---------------------------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._confmat = None
        self._errors, self._correct, self._loaders = [], [], set()
        num_classes = getattr(pl_module, "num_classes", None)
        if num_classes is not None:  # create now so every DDP rank holds a metric to sync, batches or not
            self._confmat = MulticlassConfusionMatrix(int(num_classes)).to(pl_module.device)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(outputs, dict) or "logits" not in outputs or "target" not in outputs:
            return
        logits, target = outputs["logits"].detach(), outputs["target"].detach()
        if self._confmat is None:
            self._confmat = MulticlassConfusionMatrix(logits.shape[1]).to(logits.device)
        self._loaders.add(int(dataloader_idx))
        conf, pred = logits.float().softmax(dim=-1).max(dim=-1)
        self._confmat.update(pred.to(self._confmat.device), target.to(self._confmat.device))
        images = outputs.get("images", batch[0] if isinstance(batch, (list, tuple)) else None)
        if not torch.is_tensor(images):
            return
        conf, pred, target = conf.cpu(), pred.cpu(), target.cpu()
        wrong = pred != target
        for kept, mask in ((self._errors, wrong), (self._correct, ~wrong)):
            rows = mask.nonzero().flatten()[: self.max_images - len(kept)]
            if len(rows):
                pixels = self._to_unit_range(images[rows.to(images.device)].detach().float().cpu(), trainer)
                kept += zip(pixels, pred[rows].tolist(), target[rows].tolist(), conf[rows].tolist())

    @staticmethod
    def _to_unit_range(images: torch.Tensor, trainer) -> list[torch.Tensor]:
        config = getattr(getattr(trainer, "datamodule", None), "data_config", None)
        mean, std = getattr(config, "mean", None), getattr(config, "std", None)
        if mean is not None and std is not None and len(mean) == len(std) == images.shape[1]:
            shape = (1, -1, 1, 1)
            images = images * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
        else:
            low = images.amin(dim=(1, 2, 3), keepdim=True)
            images = (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
        return list(images.clamp(0.0, 1.0))

    def context(self, trainer) -> str:
        """What the figures show: ``"test"``, or e.g. ``"test (target domain)"`` for two-domain data."""
        if not getattr(getattr(trainer, "datamodule", None), "has_target_domain", False) or not self._loaders:
            return "test"
        domains = [_TEST_DOMAINS[i] if i < len(_TEST_DOMAINS) else f"loader {i}" for i in sorted(self._loaders)]
        return f"test ({' + '.join(domains)} domain)"

    # --- output -------------------------------------------------------------------------------------------------
    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if self._confmat is None:
            return
        matrix = self._confmat.compute().cpu().numpy().astype(np.int64)  # collective: every rank calls it
        if not trainer.is_global_zero:
            return
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        if names is None or len(names) != len(matrix):
            names = range(len(matrix))
        names = [str(n) for n in names]
        out = self.dirpath if self.dirpath is not None else Path(trainer.default_root_dir) / "figures"
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "confusion_matrix.csv", "w") as f:
            writer = csv.writer(f)
            writer.writerow(["true\\pred", *names])
            writer.writerows([name, *row.tolist()] for name, row in zip(names, matrix))
        context = self.context(trainer)
        figures = {"confusion_matrix": self._confusion_figure(matrix, names, context)}
        if self.shown:
            figures["predictions"] = self._prediction_figure(names, context, matrix)
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for name, fig in figures.items():
            save_figure(fig, out / f"{name}.png", dpi=100, bbox_inches="tight")
            for logger in loggers:
                logger.experiment.add_figure(f"test/{name}", fig, global_step=trainer.global_step, close=False)
        for logger in loggers:  # figures are plain ``Figure`` objects (no pyplot state to close)
            logger.experiment.flush()

    @staticmethod
    def _summary(matrix: np.ndarray) -> str:
        total, right = int(matrix.sum()), int(np.trace(matrix))
        return f"N={total} images, accuracy {right / total:.3f}" if total else "N=0 images"

    def _confusion_figure(self, matrix: np.ndarray, names: list[str], context: str) -> Figure:
        n = len(matrix)
        values = matrix.astype(np.float64)
        if self.normalize_confusion:
            values = values / np.maximum(values.sum(axis=1, keepdims=True), 1.0)
        side = min(max(4.5, 0.6 * n + 2.0), 30.0)
        fig = Figure(figsize=(side + 1.0, side))
        ax = fig.add_subplot()
        image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if self.normalize_confusion else None)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        cells = "share of the true class (count)" if self.normalize_confusion else "counts"
        ax.set(xlabel="predicted class", ylabel="true class",
               title=f"{context}: confusion matrix\n{self._summary(matrix)}; cells: {cells}")
        if n <= _TICKS_MAX:
            ax.set_xticks(range(n), [s[:16] for s in names], rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(n), [s[:16] for s in names], fontsize=8)
        if n <= _ANNOTATE_MAX:
            threshold = 0.5 if self.normalize_confusion else values.max() / 2.0  # white text on dark cells
            for i in range(n):
                for j in range(n):
                    text = f"{values[i, j]:.2f}\n({matrix[i, j]})" if self.normalize_confusion else str(matrix[i, j])
                    ax.text(j, i, text, ha="center", va="center", fontsize=7 if n > 10 else 8,
                            color="white" if values[i, j] > threshold else "black")
        fig.tight_layout()
        return fig

    def _prediction_figure(self, names: list[str], context: str, matrix: np.ndarray) -> Figure:
        shown = self.shown
        errors = sum(pred != true for _, pred, true, _ in shown)
        cols = math.ceil(math.sqrt(len(shown)))
        rows = math.ceil(len(shown) / cols)
        fig = Figure(figsize=(max(2.4 * cols, 6.0), 2.4 * rows + 1.0), layout="constrained")

        def label(c: int) -> str:
            return names[c][:12] if 0 <= c < len(names) else str(c)

        for k, (image, pred, true, conf) in enumerate(shown):
            ax = fig.add_subplot(rows, cols, k + 1)
            pixels = image.permute(1, 2, 0).numpy()
            gray = pixels.shape[-1] == 1
            ax.imshow(pixels[..., 0] if gray else pixels, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
            ax.set_title(f"{label(pred)} ({conf:.2f}) / {label(true)}", fontsize=8,
                         color=_RIGHT if pred == true else _WRONG)
            ax.axis("off")
        fig.suptitle(f"{context}: {self._summary(matrix)}\n{errors} of {len(shown)} shown are errors (shown first); "
                     f"title = predicted (confidence) / true", fontsize=10)
        handles = [Patch(color=_WRONG, label="wrong prediction"), Patch(color=_RIGHT, label="right prediction")]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
        return fig
