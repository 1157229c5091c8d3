"""The shared LightningModule of domain adaptation: a labelled source, an unlabelled target, a bottleneck head.

Methods differ only in the loss they add (``adaptation_loss``): DANN and CDAN a domain-adversarial one, MCC a
class-confusion one, source only none.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from transferlab.backbones import Backbone
from transferlab.contracts.errors import TransferlabError
from transferlab.extract import extract
from transferlab.heads import build_bottleneck, build_head
from transferlab.metrics.validators import label_free_scores
from transferlab.strategies.finetune import Finetune


class DomainAdaptation(Finetune):
    """Backbone -> bottleneck -> classifier, trained on labelled source batches plus ``adaptation_weight`` x the
    subclass's ``adaptation_loss`` on source and target features.

    BatchNorm: with ``joint_bn=True`` (default, as TLlib) source and target go through the network as one
    concatenated batch, so batch statistics, and the running statistics used at test time, mix both domains.
    ``joint_bn=False`` runs two passes: each domain is normalised by its own batch statistics in training, while the
    running statistics still average both.

    ``adaptation_weight=0`` is the source-only baseline: the target batch is not used in training at all, not even
    through BatchNorm, so the baseline is not silently adapted -- unless ``target_bn=True`` (AdaBN-style): then
    target batches go through the network beside the source batch with no adaptation loss, which separates what
    BatchNorm alone buys from the adaptation loss.

    Validation expects the four loaders of a ``DomainDataModule``: source val (``dataloader_idx`` 0), target val
    (1), and the un-augmented source and target training images (2, 3). It logs ``val/acc`` (source),
    ``val/target_acc_oracle`` when target labels exist (evaluation only), and the label-free validators
    ``val/im``, ``val/snd`` and ``val/neg_dev_risk`` (see ``transferlab.metrics.validators``; DEV fits its domain
    classifier on loaders 2 and 3 and weights loader 0). Testing logs ``test/source_acc`` and, when the target
    has labels, ``test/target_acc``.

    Args:
        backbone, num_classes, optimizer, scheduler: see ``TransferModule``.
        bottleneck_dim: width of the Linear-BN-ReLU bottleneck; 0 = none.
        adaptation_weight: weight of ``adaptation_loss`` (0 = source only).
        joint_bn: one concatenated source+target batch (True) or two passes (False).
        target_bn: with ``adaptation_weight=0``, still pass target batches through the network (AdaBN-style).
        snd_temperature: temperature of the SND validator.
        head_hidden, head_dropout: the classifier after the bottleneck (see ``build_head``).
        **kwargs: see ``Finetune`` (freezing, ``backbone_lr_mult``) and ``TransferModule``.
    """

    def __init__(self, backbone: Backbone, num_classes: int, optimizer: Callable | None,
                 scheduler: Callable | None = None, bottleneck_dim: int = 256, adaptation_weight: float = 1.0,
                 joint_bn: bool = True, target_bn: bool = False, snd_temperature: float = 0.05,
                 head_hidden=(), head_dropout: float = 0.0, **kwargs):
        width = int(bottleneck_dim) or backbone.num_features
        head = nn.Sequential(OrderedDict(
            bottleneck=build_bottleneck(backbone.num_features, int(bottleneck_dim)),
            classifier=build_head(width, num_classes, list(head_hidden or ()), head_dropout)))
        super().__init__(backbone, num_classes, optimizer, scheduler, head_hidden=head_hidden,
                         head_dropout=head_dropout, head=head, **kwargs)
        self.features_dim = width
        self.adaptation_weight, self.joint_bn = float(adaptation_weight), bool(joint_bn)
        self.target_bn, self.snd_temperature = bool(target_bn), float(snd_temperature)
        self.target_acc = MulticlassAccuracy(num_classes, average="micro")
        self.target_test_acc = MulticlassAccuracy(num_classes, average="micro")
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
        """Bottleneck features: the input of the classifier and of any adaptation loss."""
        return self.head.bottleneck(self.features(images))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits of bottleneck ``features``."""
        return self.head.classifier(features)

    def embed_domains(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bottleneck features of both domains: one concatenated pass (``joint_bn``) or two."""
        if not self.joint_bn:
            return self.embed(source), self.embed(target)
        features = self.embed(torch.cat([source, target]))
        return features[: len(source)], features[len(source):]

    def adaptation_loss(self, source_features: torch.Tensor, source_logits: torch.Tensor,
                        target_features: torch.Tensor) -> torch.Tensor:
        """The method's loss on one batch of both domains (subclasses; logged by them)."""
        raise NotImplementedError(f"{type(self).__name__} adds no adaptation loss; set adaptation_weight=0")

    def training_step(self, batch, batch_idx):
        (source, labels), (target, _) = batch["source"], batch["target"]
        if self.adaptation_weight == 0:
            if self.target_bn:  # AdaBN-style: target batches through BN, no adaptation loss
                features = self.embed(torch.cat([source, target]))[: len(source)]
            else:  # source only: the target domain is never seen in training
                features = self.embed(source)
            logits = self.classify(features)
            loss = self.classification_loss(logits, labels)
            self.log_training(loss, logits, labels)
            return loss
        source_features, target_features = self.embed_domains(source, target)
        logits = self.classify(source_features)
        class_loss = self.classification_loss(logits, labels)
        loss = class_loss + self.adaptation_weight * self.adaptation_loss(source_features, logits, target_features)
        self.log_training(loss, logits, labels)
        self.log("train/class_loss", class_loss, on_step=False, on_epoch=True)
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
        logits = self.classify(features)
        if dataloader_idx == 0:
            losses = F.cross_entropy(logits.float(), labels, reduction="none")
            self.val_acc(logits, labels)
            self.log("val/loss", losses.mean(), on_epoch=True, prog_bar=True, add_dataloader_idx=False, sync_dist=True)
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
        self.log(f"test/{domain}_loss", loss, on_epoch=True, add_dataloader_idx=False, sync_dist=True)
        self.log(f"test/{domain}_acc", metric, on_epoch=True, add_dataloader_idx=False)
        if dataloader_idx == len(self.trainer.test_dataloaders) - 1:  # figures show the target when labelled
            return {"loss": loss, "logits": logits.detach(), "target": labels}
        return None

    # --- features for reports -----------------------------------------------------------------------------------
    def collect(self, loader, max_samples: int | None = None) -> dict[str, torch.Tensor]:
        """Bottleneck features, softmax probabilities and labels over ``loader`` in eval mode (on CPU)."""

        def forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
            features = self.embed(images)
            return {"features": features.float(), "probs": self.classify(features).float().softmax(dim=-1)}

        return extract(forward, loader, module=self, device=self.device, max_samples=max_samples)
