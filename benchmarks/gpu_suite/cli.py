"""The command line: arguments and the refusals that come before any heavy import, then the run (``suite.run``).

A used ``--out``, an unknown ``--only`` section, and a machine without CUDA when ``--dry-run`` is absent are each
refused with one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import warnings
from pathlib import Path

from out_folder import check_unused, fresh_out

from transferlab.contracts.errors import TransferlabError, report

from .settings import SECTIONS

NAME = "gpu_suite"  # the default folder is a new outputs/benchmarks/gpu_suite/<YYYYmmdd-HHMMSS-ffffff>


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bash benchmarks/gpu_suite.sh",
                                     description="Every GPU figure of the benchmarks in one command, one results file.")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"a new or empty folder for results.json and results.md (default: a new "
                             f"outputs/benchmarks/{NAME}/<YYYYmmdd-HHMMSS-ffffff>); a used folder is refused")
    parser.add_argument("--dry-run", action="store_true",
                        help="every section on the CPU at tiny sizes: a smoke run, marked dry_run, never a GPU figure")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak for MFU when the device is not in the table")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every part's time budget")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    return parser.parse_args(argv)


def chosen_sections(only: str | None) -> tuple[str, ...]:
    """The sections ``--only`` names (all when None).

    Raises:
        TransferlabError: a name that is not a section.
    """
    chosen = SECTIONS if only is None else tuple(s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise TransferlabError(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return chosen


def cuda_available() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch

        return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    """Refuse what cannot run, claim the output folder, then run the suite; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        sections = chosen_sections(args.only)
        check_unused(NAME, args.out)  # before torch is imported: a used folder is refused at once
        if not args.dry_run and not cuda_available():
            raise TransferlabError("no CUDA GPU is visible (torch.cuda.is_available() is False): run this on a GPU "
                                   "machine, or add --dry-run for the CPU smoke run")
        out = fresh_out(NAME, args.out).resolve()
    except TransferlabError as err:
        report(err)  # one line on stderr, exit code 2
    started, wall_start = datetime.datetime.now().astimezone(), time.perf_counter()
    from .suite import run  # torch, lightning and transferlab's models: only once nothing is refused

    return run(args, sections, out, argv, started, wall_start)
