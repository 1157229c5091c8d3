"""Multi-task learning: one shared backbone, one head per task, fixed or learned (uncertainty) loss weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from transferlab.backbones import Backbone
from transferlab.contracts.errors import TransferlabError
from transferlab.contracts.tasks import missing, resolve_tasks
from transferlab.heads import build_head
from transferlab.losses.tasks import TaskLoss
from transferlab.metrics.tasks import task_metrics
from transferlab.strategies.finetune import Finetune

STAGES = ("train", "val", "test")
# The factor of exp(-s) * L in each task kind's uncertainty term (Kendall et al. 2018): 1 for the classification
# likelihoods (softmax cross-entropy; multilabel/binary BCE, a product of Bernoulli likelihoods), 1/2 for a Gaussian.
LIKELIHOOD_SCALE = {"multiclass": 1.0, "multilabel": 1.0, "regression": 0.5}


def effective_weights(weights: torch.Tensor, log_vars: torch.Tensor | None = None,
                      scales: torch.Tensor | None = None) -> torch.Tensor:
    """Each task's multiplier of its loss: ``w`` (fixed) or ``w * scale * exp(-s)`` (uncertainty)."""
    if log_vars is None:
        return weights
    scales = torch.ones_like(weights) if scales is None else scales
    return weights * scales * torch.exp(-log_vars)


def combine_losses(losses: torch.Tensor, weights: torch.Tensor, log_vars: torch.Tensor | None = None,
                   scales: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
    """The total multi-task loss from per-task losses ``L`` (one tensor, one entry per task).

    Args:
        losses: ``L_i``, each task's loss over its labelled samples.
        weights: ``w_i``, each task's ``weight``.
        log_vars: ``s_i = log sigma_i^2`` for uncertainty weighting; None for fixed weighting, ``sum_i w_i * L_i``.
        scales: ``c_i`` from ``LIKELIHOOD_SCALE``: 1 for classification tasks, 1/2 for regression (default all 1).
            The uncertainty total is ``sum_i w_i * (c_i * exp(-s_i) * L_i + s_i / 2)``.
        present: bool per task, False where the batch has no label for it: that task's whole term is left out
            (default all present).
    """
    if log_vars is None:
        terms = weights * losses
    else:
        terms = effective_weights(weights, log_vars, scales) * losses + weights * 0.5 * log_vars
    if present is not None:
        terms = torch.where(present, terms, torch.zeros_like(terms))
    return terms.sum()


class Multitask(Finetune):
    """``Finetune`` with an ``nn.ModuleDict`` of heads, one per task, on the same backbone.

    Freezing, gradual unfreezing and the parameter groups (stage lrs, ``backbone_lr_mult``, ``layer_decay``) are
    ``Finetune``'s; every head and the learned log-variances train at the head lr.

    Batches are ``(images, {task: labels})``; a missing label (``-1`` for classes, ``NaN`` for regression and
    multi-label targets) is ignored for that task only. The total loss is ``combine_losses``: ``sum_i w_i * L_i``
    (``weighting="fixed"``) or, with ``weighting="uncertainty"``, Kendall, Gal & Cipolla (2018) with a learned
    log-variance ``s_i = log sigma_i^2`` per task (``log_vars``, kept in the state dict) and each task's ``weight``
    ``w_i`` scaling that task's whole term:

    - ``multiclass`` and ``multilabel`` (classification likelihoods; binary is multilabel with one class):
      ``w_i * (exp(-s_i) * L_i + s_i / 2)``;
    - ``regression`` (Gaussian likelihood): ``w_i * (exp(-s_i) * L_i / 2 + s_i / 2)``.

    For fixed ``L_i`` the optimum is ``s_i* = log(2 L_i)`` (classification) or ``log(L_i)`` (regression), where the
    task's effective weight (its multiplier of ``L_i``) is ``w_i / (2 L_i)``: the learned balance scales with
    ``weight``, so ``weight: 0.5`` halves a task's pull relative to the others. A task with no labelled sample in the
    batch contributes nothing, its ``s_i`` term included. Logged per stage: ``<stage>/task/<name>/{loss,acc,f1|mae}``,
    ``train/task/<name>/weight`` (the effective weight, see ``effective_weights``), and ``<stage>/acc``, the mean
    accuracy of the classification tasks, so ``monitor: val/acc`` keeps working.

    Args:
        tasks: task specs, e.g. ``[{name: digit}, {name: parity, weight: 0.5}]``; see ``resolve_tasks``.
        weighting: ``"fixed"`` or ``"uncertainty"``.
        data_tasks: the DataModule's ``tasks`` (passed by ``transferlab.run``); fills null ``num_classes``.
        num_classes: unused: each task has its own (kept so every strategy takes the same arguments).
        **kwargs: see ``Finetune`` and ``TransferModule``; ``head_hidden``, ``head_dropout`` and
            ``label_smoothing`` are defaults for tasks that do not set their own.

    Example:
        ``python -m transferlab.run strategy=multitask strategy.weighting=uncertainty``  (digit, parity, >= 5)
    """

    def __init__(self, backbone: Backbone, num_classes: int | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, tasks: Sequence[Mapping] = (), weighting: str = "fixed",
                 data_tasks: Mapping[str, Mapping] | None = None, head_hidden: Sequence[int] = (),
                 head_dropout: float = 0.0, label_smoothing: float = 0.0, **kwargs):
        specs = resolve_tasks(tasks, data_tasks, head_hidden, head_dropout, label_smoothing)
        heads = nn.ModuleDict({s["name"]: build_head(backbone.num_features, s["num_classes"], s["head_hidden"],
                                                     s["head_dropout"]) for s in specs})
        super().__init__(backbone, None, optimizer, scheduler, head_hidden=head_hidden, head_dropout=head_dropout,
                         head=heads, label_smoothing=label_smoothing, **kwargs)
        self.hparams.update(tasks=specs, data_tasks=None, num_classes=None)
        self.specs = {spec["name"]: spec for spec in specs}
        self.resolved_with_data = data_tasks is not None
        self.losses = nn.ModuleDict({name: TaskLoss(spec) for name, spec in self.specs.items()})
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", nn.ModuleDict(
                {name: task_metrics(spec, f"{stage}/task/{name}/") for name, spec in self.specs.items()}))
        self.log_vars = nn.Parameter(torch.zeros(len(specs))) if weighting == "uncertainty" else None
        # Not in the state dict: both follow from the saved hyperparameters (tasks).
        self.register_buffer("task_weights", torch.tensor([float(s["weight"]) for s in specs]), persistent=False)
        self.register_buffer("likelihood_scales", torch.tensor([LIKELIHOOD_SCALE[s["kind"]] for s in specs]),
                             persistent=False)
        self.task_class_names = {name: spec["class_names"] for name, spec in self.specs.items()}
        if specs[0]["kind"] == "multiclass":  # the confusion-matrix callback draws the first task when it has classes
            self.num_classes = specs[0]["num_classes"]

    # --- forward and loss ---------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images)
        return {name: head(features) for name, head in self.head.items()}

    def effective_weights(self) -> torch.Tensor:
        """Each task's multiplier of its loss now: ``weight``, or under uncertainty weighting ``weight * exp(-s)``
        (classification) and ``weight * exp(-s) / 2`` (regression)."""
        return effective_weights(self.task_weights, self.log_vars, self.likelihood_scales)

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]):
        """``(total, {task: loss}, {task: (labelled output, labelled target)})`` for one batch."""
        if not isinstance(targets, Mapping):
            raise TransferlabError("strategy=multitask needs batches (images, {task: labels}); set data.tasks "
                                   "(transferlab.run does this from strategy.tasks)")
        labelled = {name: self.losses[name].labelled(outputs[name], targets[name]) for name in self.specs}
        losses = {name: self.losses[name](*labelled[name]) for name in self.specs}
        present = torch.tensor([len(o) > 0 for o, _ in labelled.values()], device=self.task_weights.device)
        total = combine_losses(torch.stack(list(losses.values())), self.task_weights, self.log_vars,
                               self.likelihood_scales, present)
        return total, losses, labelled

    def shared_step(self, batch, stage: str) -> tuple[torch.Tensor, dict]:
        """Forward, loss, metric updates and logging of one batch of ``stage``; returns (total loss, outputs)."""
        images, targets = batch
        outputs = self(images)
        total, losses, labelled = self.compute_losses(outputs, targets)
        metrics = getattr(self, f"{stage}_metrics")
        on_step = stage == "train"
        for name, (output, target) in labelled.items():
            self.log(f"{stage}/task/{name}/loss", losses[name], on_step=on_step, on_epoch=True)
            if len(output):
                metrics[name].update(*self.losses[name].for_metrics(output, target))
        self.log(f"{stage}/loss", total, on_step=on_step, on_epoch=True, prog_bar=True)
        return total, labelled

    def epoch_metrics(self, stage: str) -> torch.Tensor | None:
        """Log every task's metrics for the epoch and ``<stage>/acc``, the mean accuracy of the class tasks
        (returned; None when no class task had labels)."""
        metrics = getattr(self, f"{stage}_metrics")
        accs = []
        for name, collection in metrics.items():
            if any(m.update_called for m in collection.values()):
                values = collection.compute()
                self.log_dict(values)
                accs += [values[f"{stage}/task/{name}/acc"]] if self.specs[name]["kind"] != "regression" else []
            collection.reset()
        if not accs:
            return None
        mean = torch.stack(accs).mean()
        self.log(f"{stage}/acc", mean, prog_bar=True)
        return mean

    def training_step(self, batch, batch_idx):
        total, _ = self.shared_step(batch, "train")
        self.check_finite(total)
        for name, weight in zip(self.specs, self.effective_weights().detach()):
            self.log(f"train/task/{name}/weight", weight, on_step=True, on_epoch=False)
        return total

    def on_train_epoch_end(self) -> None:
        self.epoch_metrics("train")

    def validation_step(self, batch, batch_idx):
        self.shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        acc = self.epoch_metrics("val")
        if acc is not None:
            self.val_acc_best(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch, batch_idx):
        """The first task's labelled logits, targets and images feed the confusion-matrix callback."""
        total, labelled = self.shared_step(batch, "test")
        first = next(iter(self.specs.values()))
        if first["kind"] != "multiclass":
            return {"loss": total}
        logits, target = labelled[first["name"]]
        images = batch[0][~missing(batch[1][first["name"]])]
        return {"loss": total, "logits": logits.detach(), "target": target, "images": images}

    def on_test_epoch_end(self) -> None:
        self.epoch_metrics("test")

    def predict_step(self, batch, batch_idx):
        """``{task: probabilities}`` (softmax, or sigmoid for multi-label) or raw values for regression."""
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        activations = {"multiclass": lambda x: x.softmax(dim=-1), "multilabel": torch.sigmoid}
        return {name: activations.get(self.specs[name]["kind"], lambda x: x)(out)
                for name, out in self(images).items()}

    # --- data and checkpoints -----------------------------------------------------------------------------------
    def data_class_names(self, datamodule) -> list[str] | None:
        """Each task's class names from the data; the first task's are returned. Tasks resolved against the data
        at construction (``data_tasks``, as ``transferlab.experiment.build`` does) are not checked again."""
        data_tasks = getattr(datamodule, "tasks", None)
        if not data_tasks:
            raise TransferlabError("strategy=multitask needs a DataModule with tasks; set data.tasks")
        if not self.resolved_with_data:  # built without the data (e.g. from Python): the same check, once, now
            resolve_tasks([{k: s[k] for k in ("name", "num_classes", "kind")} for s in self.specs.values()],
                          data_tasks)
        for name in self.specs:
            self.task_class_names[name] = list(data_tasks[name]["class_names"])
        return self.task_class_names[next(iter(self.specs))]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["transferlab"]["task_class_names"] = dict(self.task_class_names)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.task_class_names.update(checkpoint.get("transferlab", {}).get("task_class_names") or {})
