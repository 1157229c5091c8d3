"""Command-line entry for transferlab's Hydra apps: user errors become one line on stderr and exit code 2.

Hydra's own config errors (unknown group option, misspelt key, bad override syntax) and ``TransferlabError``
alike print ``transferlab: error: <message>`` with no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf.errors import OmegaConfBaseException

from transferlab.errors import TransferlabError

EXIT_USER_ERROR = 2


_WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


def user_error(err: BaseException | None) -> TransferlabError | None:
    """The TransferlabError behind ``err`` (Hydra wraps errors raised inside instantiated targets), if any.

    A full disk, a read-only folder or a missing permission (an ``OSError`` anywhere in the chain) is a user error
    too: one line naming the file.
    """
    while err is not None:
        if isinstance(err, TransferlabError):
            return err
        if isinstance(err, OSError) and err.errno in _WRITE_ERRORS:
            return TransferlabError(f"{_WRITE_ERRORS[err.errno]}: {err.filename or 'a file'}; free space or fix the "
                                    f"permissions, or set paths.log_dir (or hydra.run.dir) to a writable folder")
        err = err.__cause__ or err.__context__
    return None


def one_line(err: BaseException) -> str:
    """``err``'s message on one line: Hydra's multi-line messages joined with '; '."""
    lines = [" ".join(line.split()) for line in str(err).splitlines()]
    return "; ".join(line for line in lines if line) or type(err).__name__


def report(err: BaseException) -> None:
    """Print ``err`` as the one-line user error and exit 2."""
    print(f"transferlab: error: {one_line(err)}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def run_app(main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function, turning user errors (Hydra's or ours) into one line and exit code 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing its own report
    try:
        main()
    except (HydraException, OmegaConfBaseException, TransferlabError) as err:
        report(user_error(err) or err)
    except Exception as err:
        problem = user_error(err)
        if problem is None:
            raise
        report(problem)


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
