"""Domain-adversarial training (DANN, Ganin et al. 2015, 2016) and its source-only baseline."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

from transferlab.analysis.validators import label_free_scores
from transferlab.errors import TransferlabError
from transferlab.heads import GradientReversal, build_bottleneck, build_discriminator, build_head, dann_lambda
from transferlab.strategies.finetune import Finetune

LAMBDA_SCHEDULES = ("dann", "constant")


class DANN(Finetune):
    """Backbone -> bottleneck -> class head, and bottleneck -> GRL -> domain discriminator.

    Loss = source cross-entropy + ``domain_weight`` x domain BCE (source 0, target 1, each domain weighted 1/2).
    The GRL coefficient is ``lambda_max * (2 / (1 + exp(-gamma p)) - 1)`` with ``p = global_step / total steps``
    (``trainer.estimated_stepping_batches``): derived from the trainer, so it is right after a resume and under DDP.

    BatchNorm: with ``joint_bn=True`` (default, as TLlib) source and target go through the network as one
    concatenated batch, so batch statistics, and the running statistics used at test time, mix both domains.
    ``joint_bn=False`` runs two passes: each domain is normalised by its own batch statistics in training (the
    discriminator cannot use a BN shift between domains), while the running statistics still average both.

    ``domain_weight=0`` is the source-only baseline (``strategy=source_only``): the target batch is not used in
    training at all, not even through BatchNorm, so the baseline is not silently adapted -- unless
    ``target_bn=True`` (``strategy=adabn``): then target batches go through the network beside the source batch
    (BatchNorm statistics of both domains, as with ``joint_bn``) with no domain loss, which separates what
    BatchNorm alone buys from adversarial alignment.

    Validation expects the four loaders of a ``DomainDataModule``: source val (``dataloader_idx`` 0), target val
    (1), and the un-augmented source and target training images (2, 3). It logs ``val/acc`` (source),
    ``val/target_acc_oracle`` when target labels exist (evaluation only), and the label-free validators
    ``val/im``, ``val/snd`` and ``val/neg_dev_risk`` (see ``transferlab.analysis.validators``; DEV fits its domain
    classifier on loaders 2 and 3 and weights loader 0). Testing logs ``test/source_acc`` and, when the target
    has labels, ``test/target_acc``.

    Args:
        bottleneck_dim: width of the Linear-BN-ReLU bottleneck; 0 = none.
        domain_weight: weight of the domain loss (0 = source only).
        lambda_schedule: ``"dann"`` (the schedule above) or ``"constant"`` (``lambda_max`` throughout).
        gamma: steepness of the schedule.
        lambda_max: final (or constant) GRL coefficient.
        discriminator_hidden: width of the discriminator's two hidden layers.
        discriminator_dropout: dropout after each hidden layer; 0.5 (with ``lambda_max=1``) had the best worst-case
            gain over source only on the development pair (``benchmarks/da_protocol.py``).
        joint_bn: one concatenated source+target batch (True) or two passes (False).
        target_bn: with ``domain_weight=0``, still pass target batches through the network (AdaBN-style).
        snd_temperature: temperature of the SND validator.
        *args, **kwargs: see ``Finetune`` (freezing, ``backbone_lr_mult``, head) and ``TransferModule``.

    Example:
        ``python -m transferlab.run strategy=dann data=digits_blend``
    """

    def __init__(self, *args, bottleneck_dim: int = 256, domain_weight: float = 1.0, lambda_schedule: str = "dann",
                 gamma: float = 10.0, lambda_max: float = 1.0, discriminator_hidden: int = 1024,
                 discriminator_dropout: float = 0.5, joint_bn: bool = True, target_bn: bool = False,
                 snd_temperature: float = 0.05, **kwargs):
        kwargs.setdefault("backbone_lr_mult", 0.1)
        super().__init__(*args, **kwargs)
        if lambda_schedule not in LAMBDA_SCHEDULES:
            raise TransferlabError(f"strategy.lambda_schedule={lambda_schedule!r} must be one of "
                                   f"{', '.join(LAMBDA_SCHEDULES)}")
        if float(domain_weight) < 0:
            raise TransferlabError(f"strategy.domain_weight={domain_weight} must be >= 0")
        width = int(bottleneck_dim) or self.backbone.num_features
        self.head = nn.Sequential(OrderedDict(
            bottleneck=build_bottleneck(self.backbone.num_features, int(bottleneck_dim)),
            classifier=build_head(width, self.num_classes, list(self.hparams.head_hidden or ()),
                                  self.hparams.head_dropout)))
        self.grl = GradientReversal()
        self.discriminator = build_discriminator(width, discriminator_hidden, discriminator_dropout)
        self.domain_weight, self.lambda_schedule = float(domain_weight), lambda_schedule
        self.gamma, self.lambda_max, self.joint_bn = float(gamma), float(lambda_max), bool(joint_bn)
        self.target_bn, self.snd_temperature = bool(target_bn), float(snd_temperature)
        self.domain_acc = BinaryAccuracy()
        self.target_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.target_test_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self._outputs: dict[str, list[torch.Tensor]] = {}

    # --- data check ---------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if not getattr(datamodule, "has_target_domain", False):
            raise TransferlabError(f"strategy=dann/source_only needs data with a target domain (data=domain_pair or "
                                   f"data=digits_blend); {type(datamodule).__name__} has none")

    # --- forward ------------------------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Bottleneck features: the input of both the class head and the discriminator."""
        return self.head.bottleneck(self.features(images))

    def grl_coeff(self) -> float:
        """The GRL coefficient at the current global step (a pure function of trainer state)."""
        if self.lambda_schedule == "constant":
            return self.lambda_max
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise TransferlabError("the DANN lambda schedule needs a finite run: set trainer.max_epochs or "
                                   "trainer.max_steps, or strategy.lambda_schedule=constant")
        return dann_lambda(self.global_step / max(total, 1), self.gamma, self.lambda_max)

    def domain_loss(self, source: torch.Tensor, target: torch.Tensor, coeff: float) -> torch.Tensor:
        """BCE-with-logits of the discriminator on reversed features (source 0, target 1), each domain weighted 1/2."""
        logits = self.discriminator(self.grl(torch.cat([source, target]), coeff)).squeeze(1)
        labels = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(logits.device)
        per_sample = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").float()
        loss = 0.5 * (per_sample[: len(source)].mean() + per_sample[len(source):].mean())
        self.domain_acc(logits.detach().float().sigmoid(), labels.long())
        return loss

    def training_step(self, batch, batch_idx):
        (source, labels), (target, _) = batch["source"], batch["target"]
        if self.domain_weight == 0 and self.target_bn:  # AdaBN-style: target batches through BN, no domain loss
            logits = self.head.classifier(self.embed(torch.cat([source, target]))[: len(source)])
            loss = self.classification_loss(logits, labels)
            self.log_training(loss, logits, labels)
            return loss
        if self.domain_weight == 0:  # source only: the target domain is never seen in training
            return super().training_step((source, labels), batch_idx)
        if self.joint_bn:
            features = self.embed(torch.cat([source, target]))
            source_features, target_features = features[: len(source)], features[len(source):]
        else:
            source_features, target_features = self.embed(source), self.embed(target)
        logits = self.head.classifier(source_features)
        class_loss = self.classification_loss(logits, labels)
        coeff = self.grl_coeff()
        domain_loss = self.domain_loss(source_features, target_features, coeff)
        loss = class_loss + self.domain_weight * domain_loss
        self.log_training(loss, logits, labels)
        self.log("train/class_loss", class_loss, on_step=False, on_epoch=True)
        self.log("domain/loss", domain_loss, on_step=True, on_epoch=True)
        self.log("domain/acc", self.domain_acc, on_step=False, on_epoch=True)
        self.log("dann/lambda", coeff, on_step=True, on_epoch=False)
        return loss

    # --- validation: source accuracy, oracle target accuracy, label-free validators -----------------------------
    OUTPUTS = ("source_val_features", "source_val_losses", "target_val_probs", "source_train_features",
               "target_train_features")

    def on_validation_epoch_start(self) -> None:
        self._outputs = {name: [] for name in self.OUTPUTS}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        images, labels = batch
        features = self.embed(images)
        if dataloader_idx >= 2:  # un-augmented training images: what DEV fits its domain classifier on
            self._outputs[("source_train_features", "target_train_features")[dataloader_idx - 2]].append(
                features.float())
            return
        logits = self.head.classifier(features)
        if dataloader_idx == 0:
            losses = F.cross_entropy(logits.float(), labels, reduction="none")
            self.val_acc(logits, labels)
            self.log("val/loss", losses.mean(), on_epoch=True, prog_bar=True, add_dataloader_idx=False)
            self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True, add_dataloader_idx=False)
            self._outputs["source_val_features"].append(features.float())
            self._outputs["source_val_losses"].append(losses)
            return
        self._outputs["target_val_probs"].append(logits.float().softmax(dim=-1))
        labelled = labels >= 0  # -1 = unlabelled target image
        if labelled.any():
            self.target_acc(logits[labelled], labels[labelled])
            self.log("val/target_acc_oracle", self.target_acc, on_epoch=True, add_dataloader_idx=False)

    def _gathered(self, name: str) -> torch.Tensor:
        values = self.all_gather(torch.cat(self._outputs[name]))
        return values.flatten(0, 1) if self.trainer.world_size > 1 else values

    def on_validation_epoch_end(self) -> None:
        if all(len(self._outputs[k]) for k in self.OUTPUTS):
            scores = label_free_scores(**{name: self._gathered(name) for name in self.OUTPUTS},
                                       temperature=self.snd_temperature)
            for name, value in scores.items():  # identical on every rank: computed from gathered tensors
                self.log(f"val/{name}", value)
        super().on_validation_epoch_end()

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """``test/source_*`` on the source test split (loader 0), ``test/target_*`` on the labelled target's (1)."""
        images, labels = batch
        logits = self(images)
        loss = self.classification_loss(logits, labels)
        domain, metric = (("source", self.test_acc), ("target", self.target_test_acc))[dataloader_idx]
        metric(logits, labels)
        self.log(f"test/{domain}_loss", loss, on_epoch=True, add_dataloader_idx=False)
        self.log(f"test/{domain}_acc", metric, on_epoch=True, add_dataloader_idx=False)
        if dataloader_idx == len(self.trainer.test_dataloaders) - 1:  # figures show the target when labelled
            return {"loss": loss, "logits": logits.detach(), "target": labels}
        return None

    # --- features for reports -----------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, loader, max_samples: int | None = None) -> dict[str, torch.Tensor]:
        """Bottleneck features, softmax probabilities and labels over ``loader`` in eval mode (on CPU)."""
        was_training = self.training
        self.eval()
        out = {"features": [], "probs": [], "labels": []}
        seen = 0
        for images, labels in loader:
            features = self.embed(images.to(self.device))
            out["features"].append(features.float().cpu())
            out["probs"].append(self.head.classifier(features).float().softmax(dim=-1).cpu())
            out["labels"].append(labels.cpu())
            seen += len(labels)
            if max_samples is not None and seen >= max_samples:
                break
        self.train(was_training)
        return {k: torch.cat(v)[:max_samples] for k, v in out.items()}
