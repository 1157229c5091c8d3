"""Fine-tuning: freeze the first stages, discriminative learning rates, gradual unfreezing."""

from __future__ import annotations

from collections.abc import Sequence

from transferlab.errors import TransferlabError
from transferlab.strategies.base import TransferModule
from transferlab.validation import check_freeze_depth


class Finetune(TransferModule):
    """Train the head and the backbone stages above ``freeze_depth``.

    Gradual unfreezing: at each epoch listed in ``unfreeze_epochs`` another ``unfreeze_step`` stages (from the top
    of the frozen part) start training. The frozen depth is a pure function of ``current_epoch``, and every
    parameter is in the optimizer from the start, so a resumed run continues exactly where it stopped.

    Args:
        freeze_depth: stages frozen at the start, stem first (0 = train everything).
        unfreeze_epochs: epochs at which to unfreeze more stages, e.g. ``[2, 4]``.
        unfreeze_step: stages released at each of those epochs.
        **kwargs: see ``TransferModule`` (lrs, head, label smoothing).

    Example:
        ``python -m transferlab.run strategy=finetune strategy.freeze_depth=4 strategy.unfreeze_epochs=[1,2]``
    """

    def __init__(self, *args, freeze_depth: int = 0, unfreeze_epochs: Sequence[int] = (), unfreeze_step: int = 1,
                 **kwargs):
        super().__init__(*args, **kwargs)
        check_freeze_depth(freeze_depth, self.backbone)
        if int(unfreeze_step) < 1:
            raise TransferlabError(f"strategy.unfreeze_step={unfreeze_step} must be >= 1")
        self.freeze_depth, self.unfreeze_step = int(freeze_depth), int(unfreeze_step)
        self.unfreeze_epochs = sorted(int(e) for e in unfreeze_epochs or ())
        self.apply_freezing()

    def frozen_depth(self) -> int:
        epoch = self.trainer.current_epoch if self._trainer is not None else 0
        released = sum(e <= epoch for e in self.unfreeze_epochs) * self.unfreeze_step
        return max(self.freeze_depth - released, 0)

    def on_train_epoch_start(self) -> None:
        depth = self.frozen_depth()
        self.apply_freezing()
        self.log("finetune/frozen_depth", float(depth), on_epoch=True)
