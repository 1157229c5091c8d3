"""The run folder's one owner: an exclusive lock taken before anything is written, and no second run in a used folder.

``claim_run_dir`` is called by ``experiment.train`` (and, for the command line, by the ``FreshRunDir`` Hydra
callback before Hydra writes its ``.hydra/`` files); ``release_run_dir`` when the run ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only

from transferlab.contracts.errors import TransferlabError, report, user_error

_LOCKS: dict[Path, int] = {}  # run folder -> open lock file descriptor, held until the process ends


def claim_run_dir(run_dir: str | Path) -> None:
    """Make this process the one owner of ``run_dir``: an exclusive ``flock`` on ``<run_dir>/.lock``, taken before
    anything else is written there, then the fresh-folder check.

    The kernel releases the lock when its process ends, however it ends, so a lock file left by a killed run is
    stale and simply taken over; a live owner makes this a one-line error naming its PID.
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _LOCKS:
        return
    if rank_zero_only.rank != 0:  # DDP ranks > 0 write into the folder their rank 0 owns
        return check_fresh(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise user_error(err) or TransferlabError(f"cannot create the run folder {run_dir}: {err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise TransferlabError(f"{run_dir} is in use by another run (PID {owner}); wait for it, or choose another "
                               f"hydra.run.dir") from None
    try:
        check_fresh(run_dir)
    except TransferlabError:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _LOCKS[run_dir] = fd


def release_run_dir(run_dir: str | Path) -> None:
    """Give up the ownership ``claim_run_dir`` took (also happens when the process ends)."""
    fd = _LOCKS.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def check_fresh(run_dir: str | Path) -> None:
    """A run folder that already holds results (metrics.json, checkpoints/) is never written into again."""
    run_dir = Path(run_dir)
    earlier = [p.name for p in (run_dir / "metrics.json", run_dir / "checkpoints") if p.exists()]
    if earlier:
        raise TransferlabError(f"{run_dir} already holds a run ({', '.join(earlier)}); it is never overwritten: "
                               "choose another hydra.run.dir, or continue it with resume=<its last.ckpt>")


class FreshRunDir(Callback):
    """Hydra callback: take ownership of a single run's ``hydra.run.dir`` (``claim_run_dir``) and refuse one that
    holds an earlier run, before Hydra writes its ``.hydra/`` files there. Hydra turns exceptions raised in
    callbacks into warnings, so this exits itself."""

    def on_run_start(self, config, **kwargs) -> None:
        try:
            claim_run_dir(config.hydra.run.dir)
        except TransferlabError as err:
            report(err)
