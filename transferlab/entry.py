"""How every command-line entry point starts and reports: user errors become one line on stderr and exit code 2.

Hydra apps (``python -m transferlab.run``) go through ``run_app``; the ``key=value`` and argparse scripts (predict,
export, rank, sweep_summary) through ``run_script``. Both print a user error, whether Hydra's own (unknown group
option, misspelt key, bad override syntax), a ``TransferlabError`` or a full disk, with
``contracts.errors.print_error``, with no traceback. Anything else is a bug and keeps its traceback.
``-h``/``--help`` of a ``key=value`` script prints its help on stdout and exits 0 (``check_help``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from transferlab.contracts.errors import EXIT_USER_ERROR, TransferlabError, print_error, report, user_error


def user_problem(err: BaseException) -> BaseException | None:
    """The user error ``err`` is or wraps (Hydra's and OmegaConf's config errors count), or None for a bug."""
    if isinstance(err, (HydraException, OmegaConfBaseException, TransferlabError)):
        return user_error(err) or err
    return user_error(err)


def run_app(main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function, turning user errors (Hydra's or ours) into one line and exit code 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing its own report
    try:
        main()
    except Exception as err:
        problem = user_problem(err)
        if problem is None:
            raise
        report(problem)


class HelpRequested(Exception):
    """``-h`` or ``--help`` was given: ``run_script`` prints the message (the script's help) on stdout, exit code 0."""


def check_help(argv: Sequence[str], usage: str, details: str = "") -> None:
    """Raise ``HelpRequested`` with ``usage: <usage>`` (and ``details``) when ``argv`` asks for help."""
    if any(arg in ("-h", "--help") for arg in argv):
        raise HelpRequested(f"usage: {usage}\n{details}".rstrip())


def run_script(script: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """``script(argv)`` (default ``sys.argv[1:]``) as an exit status: its own, 0 for None or after printing the help
    ``-h``/``--help`` asked for, or 2 after printing a user error as one line."""
    try:
        return script(list(sys.argv[1:] if argv is None else argv)) or 0
    except HelpRequested as help_:
        print(help_)
        return 0
    except Exception as err:
        problem = user_problem(err)
        if problem is None:
            raise
        print_error(problem)
        return EXIT_USER_ERROR


def parse_key_values(argv: Sequence[str], known: set[str], required: set[str], usage: str,
                     details: str = "") -> dict[str, str]:
    """Hydra-style ``key=value`` arguments as a dict; an unknown, missing or malformed one is the ``usage`` error.

    ``-h``/``--help`` anywhere asks for the help instead: ``usage`` and ``details`` (see ``check_help``).
    """
    check_help(argv, usage, details)
    args = dict(arg.partition("=")[::2] for arg in argv)
    if set(args) - known or required - set(args) or any("=" not in arg for arg in argv):
        raise TransferlabError(f"usage: {usage}")
    return args
