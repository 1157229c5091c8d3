"""A benchmark's output folder: ``--out DIR``, else a new ``outputs/benchmarks/<name>/<YYYYmmdd-HHMMSS-ffffff>``.

A benchmark re-runs as it is and never needs cleaning up: a folder that holds anything already is refused, before any
work, with one ``TransferlabError`` line. Imports no torch or lightning, so a script can refuse a used ``--out``
before its heavy imports (``benchmarks/common.py`` re-exports all of it).
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime
from pathlib import Path

from transferlab.contracts.errors import TransferlabError

ROOT = Path(__file__).resolve().parents[1]
COMMAND_FILE = "command.txt"  # the first file of every benchmark folder: the command that made it


def outputs_root() -> Path:
    """Where benchmark folders go by default: ``$TRANSFERLAB_OUTPUTS/benchmarks`` (as ``paths.log_dir`` moves
    ``outputs/``), else ``outputs/benchmarks`` in this checkout."""
    return Path(os.environ.get("TRANSFERLAB_OUTPUTS") or ROOT / "outputs") / "benchmarks"


def _held(folder: Path) -> list[str]:
    """The names ``folder`` holds (results first); [] when it does not exist.

    Raises:
        TransferlabError: ``folder`` is a file.
    """
    if folder.exists() and not folder.is_dir():
        raise TransferlabError(f"--out {folder} is a file, not a folder; choose a new folder, or leave --out out for "
                               f"a new timestamped one")
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir()), key=lambda name: (not name.startswith("result"), name))


def _refusal(name: str, out: Path, held: list[str]) -> TransferlabError:
    shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
    return TransferlabError(f"--out {out} already holds {shown}; a benchmark never writes into a used folder: "
                            f"choose a new --out, or leave --out out for a new timestamped folder under "
                            f"{outputs_root() / name}")


def _claim(folder: Path) -> list[str]:
    """Make ``folder`` this run's: create it (or take an empty one) and write ``command.txt`` exclusively, so of two
    runs started on one folder only one gets it. Returns [] on success, else the names the folder already holds."""
    held = _held(folder)
    if held:
        return held
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / COMMAND_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another run claimed it between the listing and here
        return [COMMAND_FILE]
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{shlex.join([Path(sys.executable).name, *sys.argv])}\n"
                     f"# started {datetime.now().isoformat(timespec='seconds')}, PID {os.getpid()}, cwd {Path.cwd()}\n")
    return []


def check_unused(name: str, out: str | Path | None) -> None:
    """Refuse ``out`` as ``fresh_out`` would, creating nothing (for checks that must come before the claim).

    Raises:
        TransferlabError: ``out`` already holds files or is a file.
    """
    if out is not None and (held := _held(Path(out))):
        raise _refusal(name, Path(out), held)


def fresh_out(name: str, out: str | Path | None = None) -> Path:
    """The folder benchmark ``name`` writes everything into (its results and any transferlab run folders), created
    and claimed for this run.

    ``out`` None: a new ``<outputs_root()>/<name>/<YYYYmmdd-HHMMSS-ffffff>``, never one an earlier or concurrent run
    has. ``out`` given: that folder, which must be new or empty.

    Raises:
        TransferlabError: ``out`` already holds files (results, run folders, another run's ``command.txt``) or is a
            file; nothing is written then.
    """
    if out is not None:
        out = Path(out)
        held = _claim(out)
        if held:
            raise _refusal(name, out, held)
        return out
    for attempt in range(100):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f") + (f"-{attempt}" if attempt else "")
        folder = outputs_root() / name / stamp
        if not _claim(folder):
            return folder
    raise TransferlabError(f"no fresh folder under {outputs_root() / name} after 100 tries; pass --out")


def add_out_argument(parser, name: str) -> None:
    """The ``--out`` option every benchmark takes (see ``fresh_out``)."""
    parser.add_argument("--out", type=Path, default=None,
                        help=f"a new or empty folder for the results (default: a new "
                             f"outputs/benchmarks/{name}/<YYYYmmdd-HHMMSS-ffffff>)")
