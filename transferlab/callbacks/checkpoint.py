"""``ModelCheckpoint`` whose best checkpoint survives a resume into a new run folder.

``resume=auto`` and ``resume=<path>`` continue in a *new* run folder. Lightning's ``ModelCheckpoint`` then refuses to
restore its best score and top-k (its dirpath changed), so the resumed run forgets every epoch before the
interruption and may pick, and test, a worse epoch as "best".
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from transferlab.atomic import atomic_open


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` to ``target`` atomically (``transferlab.atomic.atomic_open``): never a partial ``target``."""
    with open(source, "rb") as src, atomic_open(target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that restores its best and top-k state even when the run folder changed.

    When the checkpoint being resumed was written with another ``dirpath`` (an earlier run's folder), each file of
    its top-k (``best_k_models``, which holds the best and the k-th) is copied under the same name into this run's
    ``dirpath``, and the restored best/k-th paths point at the copies: this run's folder is self-contained (testing
    ``ckpt_path="best"`` works from it alone) and the earlier folder is only read, never changed. Scores
    (best, k-th, current) are restored as saved. A top-k file that no longer exists keeps its score and its old
    path, with one ``transferlab: warning:`` line; a later, better epoch replaces it as usual.

    Other paths are restored as they were: ``last_model_path`` (and, with ``monitor=None``, ``best_model_path``)
    name the latest save, normally the checkpoint this run resumed from; this run's next save replaces them, and
    Lightning never deletes a file outside its own ``dirpath``. With the same ``dirpath``, or a remote one, this is
    Lightning's own restore plus ``current_score``. Arguments are ``ModelCheckpoint``'s.
    """

    @property
    def state_key(self) -> str:
        """``ModelCheckpoint``'s key, so checkpoints written with plain ``ModelCheckpoint`` restore into this one."""
        return ModelCheckpoint.__qualname__ + super().state_key[len(type(self).__qualname__):]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's restore, after copying the earlier run's top-k files here when the (local) dirpath changed."""
        state = dict(state_dict)
        previous = state.get("dirpath", self.dirpath)
        if self.dirpath and previous != self.dirpath and _is_local_file_protocol(self.dirpath):
            best_k = state.get("best_k_models") or {}
            missing = [path for path in best_k if not Path(path).is_file()]
            moved = {path: path if path in missing else self._adopt(path) for path in best_k}
            if missing and rank_zero_only.rank == 0:
                print(f"transferlab: warning: resumed best checkpoint(s) {', '.join(missing)} missing; their scores "
                      "stay, so ckpt_path='best' fails unless a later epoch beats them", file=sys.stderr)
            state["best_k_models"] = {moved[path]: score for path, score in best_k.items()}
            for key in ("best_model_path", "kth_best_model_path"):
                if state.get(key) in moved:
                    state[key] = moved[state[key]]
            state["dirpath"] = self.dirpath  # what Lightning checks before restoring anything but the best path
        super().load_state_dict(state)
        self.current_score = state.get("current_score", self.current_score)

    def _adopt(self, path: str) -> str:
        """Copy the earlier run's checkpoint ``path`` into this run's ``dirpath`` (same name); return the copy."""
        source, target = Path(path), Path(self.dirpath) / Path(path).name
        if rank_zero_only.rank == 0 and source.resolve() != target.resolve():
            copy_atomic(source, target)
        return str(target)


class LastCheckpoint(BestCheckpoint):
    """``last.ckpt``: every ``every_n_train_steps`` steps when set, and always at the end of each training epoch.

    Lightning stops saving at epoch ends once ``every_n_train_steps`` is set, so a run (or a resumed run) could end
    without a ``last.ckpt`` of its final state; and a step-save that lands on an epoch's last step holds the state
    before that epoch's validation, which a resume would then skip. Saving again at the epoch's end, after
    validation, closes both gaps. Use with ``monitor=None``.
    """

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._every_n_train_steps and not (trainer.fast_dev_run or trainer.sanity_checking):
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))
