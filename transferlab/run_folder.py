"""The run folder's one owner: an exclusive lock taken before anything is written, and no second run in a used folder.

``claim_run_dir`` is called by ``experiment.train`` (and, for the command line, by the ``FreshRunDir`` Hydra
callback before Hydra writes its ``.hydra/`` files); ``release_run_dir`` when the run ends. ``job_stamp`` (the
``${transferlab.job_stamp:...}`` resolver in ``hydra.run.dir``) names the folder so that every rank of one torchrun or
srun job computes the same one.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
from pathlib import Path

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from transferlab.contracts.errors import TransferlabError, report, user_error

_LOCKS: dict[Path, int] = {}  # run folder -> open lock file descriptor, held until the process ends
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def job_stamp(clock: str) -> str:
    """The run folder's name before ``_<strategy>-<model>``: ``clock`` (Hydra's cached ``${now:...}``) for a run in
    one process; for one process of several (``WORLD_SIZE`` > 1, or an ``srun`` step of several tasks) the launcher's
    job identity instead, which every rank sees alike whatever its clock says:

    - ``slurm<SLURM_JOB_ID>.<SLURM_STEP_ID>`` inside an ``srun`` step (plain ``srun`` or ``srun torchrun``);
    - ``torchrun-<TORCHELASTIC_RUN_ID>``: torchrun's ``--rdzv-id`` (``--standalone`` draws a UUID, shortened here);
    - ``-requeue<n>`` / ``-restart<n>`` after a SLURM requeue / torchrun restart: a new attempt, a new folder.

    Raises:
        TransferlabError: several processes but no shared identity (torchrun's default ``--rdzv-id`` is ``none``).
    """
    env = os.environ
    srun = "SLURM_JOB_ID" in env and "SLURM_STEP_ID" in env
    tasks = _env_int("SLURM_STEP_NUM_TASKS", _env_int("SLURM_NTASKS", 1))
    if _env_int("WORLD_SIZE", 1) <= 1 and not (srun and tasks > 1):
        return clock
    parts = [f"slurm{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}"] if srun else []
    run_id = env.get("TORCHELASTIC_RUN_ID", "none")
    if run_id not in ("none", "", env.get("SLURM_JOB_ID")):
        parts.append(f"torchrun-{run_id[:8] if _UUID.fullmatch(run_id) else run_id}")
    if not parts:
        raise TransferlabError("this process is one of several (WORLD_SIZE>1) but its ranks share no job id to name "
                               "their run folder: give torchrun the same --rdzv-id=<unique job id> on every node "
                               "(or --standalone on one node), or set hydra.run.dir")
    attempts = [f"-{word}{n}" for word, n in (("requeue", _env_int("SLURM_RESTART_COUNT", 0)),
                                                ("restart", _env_int("TORCHELASTIC_RESTART_COUNT", 0))) if n > 0]
    return re.sub(r"[^A-Za-z0-9._-]", "-", "_".join(parts) + "".join(attempts))


@functools.cache
def job_stamp_once(clock: str) -> str:
    """``job_stamp``, cached per process: the first answer sticks, like ``${now:...}``'s. Hydra's config re-resolves
    hydra.run.dir later, e.g. Lightning's own DDP launcher after it has set WORLD_SIZE in rank 0 to start the other
    ranks. A module-level function, so launchers that pickle the job (submitit, joblib) find it by name."""
    return job_stamp(clock)


OmegaConf.register_new_resolver("transferlab.job_stamp", job_stamp_once, replace=True)


def claim_run_dir(run_dir: str | Path, continuing: bool = False) -> None:
    """Make this process the one owner of ``run_dir``: an exclusive ``flock`` on ``<run_dir>/.lock``, taken before
    anything else is written there, then the fresh-folder check (skipped when ``continuing`` a sweep job's
    interrupted attempt in its own folder).

    The kernel releases the lock when its process ends, however it ends, so a lock file left by a killed run is
    stale and simply taken over; a live owner makes this a one-line error naming its PID.
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _LOCKS:
        return
    if rank_zero_only.rank != 0:  # DDP ranks > 0 write into the folder their rank 0 owns
        return None if continuing else check_fresh(run_dir)
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
        if not continuing:
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
        except Exception as err:  # also one raised while resolving the folder's name (job_stamp)
            problem = user_error(err)
            if problem is None:
                raise
            report(problem)
