"""Command-line entry for transferlab's Hydra apps: user errors become one line on stderr and exit code 2.

Hydra's own config errors (unknown group option, misspelt key, bad override syntax) and ``TransferlabError``
alike print ``transferlab: error: <message>`` with no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf.errors import OmegaConfBaseException

from transferlab.errors import TransferlabError

EXIT_USER_ERROR = 2


def user_error(err: BaseException | None) -> TransferlabError | None:
    """The TransferlabError behind ``err`` (Hydra wraps errors raised inside instantiated targets), if any."""
    while err is not None:
        if isinstance(err, TransferlabError):
            return err
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


def check_fresh(run_dir: str | Path) -> None:
    """A run folder that already holds results (metrics.json, checkpoints/) is never written into again."""
    run_dir = Path(run_dir)
    earlier = [p.name for p in (run_dir / "metrics.json", run_dir / "checkpoints") if p.exists()]
    if earlier:
        raise TransferlabError(f"{run_dir} already holds a run ({', '.join(earlier)}); it is never overwritten: "
                               "choose another hydra.run.dir, or continue it with resume=<its last.ckpt>")


class FreshRunDir(Callback):
    """Hydra callback: refuse a single run whose ``hydra.run.dir`` holds an earlier run, before Hydra writes its
    ``.hydra/`` files there. Hydra turns exceptions raised in callbacks into warnings, so this exits itself."""

    def on_run_start(self, config, **kwargs) -> None:
        try:
            check_fresh(config.hydra.run.dir)
        except TransferlabError as err:
            report(err)
