"""Fine-tuning: freeze the first stages, discriminative learning rates, gradual unfreezing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from transferlab.backbones import Backbone
from transferlab.heads import build_head
from transferlab.strategies.base import TransferModule


class Finetune(TransferModule):
    """Train the head and the backbone stages above ``freeze_depth``.

    Gradual unfreezing: at each epoch listed in ``unfreeze_epochs`` another ``unfreeze_step`` stages (from the top
    of the frozen part) start training. The frozen depth is a pure function of ``current_epoch``, and every
    parameter is in the optimizer from the start, so a resumed run continues exactly where it stopped.

    Args:
        backbone, num_classes, optimizer, scheduler: see ``TransferModule``.
        freeze_depth: stages frozen at the start, stem first (0 = train everything).
        unfreeze_epochs: epochs at which to unfreeze more stages, e.g. ``[2, 4]``.
        unfreeze_step: stages released at each of those epochs.
        head_hidden: widths of MLP hidden layers; empty for a linear head.
        head_dropout: dropout in the head.
        head: a head built by a subclass (bottleneck + classifier, one head per task); None builds
            ``build_head(num_features, num_classes, head_hidden, head_dropout)``.
        **kwargs: see ``TransferModule`` (label smoothing, ``backbone_lr_mult``, ``layer_decay``).

    Example:
        ``python -m transferlab.run strategy=finetune strategy.freeze_depth=4 strategy.unfreeze_epochs=[1,2]``
    """

    def __init__(self, backbone: Backbone, num_classes: int | None, optimizer: Callable | None,
                 scheduler: Callable | None = None, freeze_depth: int = 0, unfreeze_epochs: Sequence[int] = (),
                 unfreeze_step: int = 1, head_hidden: Sequence[int] = (), head_dropout: float = 0.0,
                 head: nn.Module | None = None, **kwargs):
        if head is None:
            head = build_head(backbone.num_features, num_classes, list(head_hidden or ()), head_dropout)
        super().__init__(backbone, head, num_classes, optimizer, scheduler, **kwargs)
        self.freeze_depth, self.unfreeze_step = int(freeze_depth), int(unfreeze_step)
        self.unfreeze_epochs = sorted(int(e) for e in unfreeze_epochs or ())
        self.apply_freezing()  # Backbone.freeze checks the depth

    def frozen_depth(self) -> int:
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        released = sum(e <= epoch for e in self.unfreeze_epochs) * self.unfreeze_step
        return max(self.freeze_depth - released, 0)

    def on_train_epoch_start(self) -> None:
        depth = self.frozen_depth()
        self.apply_freezing()
        self.log("finetune/frozen_depth", float(depth), on_epoch=True)
