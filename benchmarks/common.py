"""Shared pieces of the benchmark scripts: their output folder, how they start and report, device description,
synchronised timing, a Lightning step timer.

Every script writes into one folder of its own (``fresh_out``): ``--out DIR`` if given, else a new timestamped
``outputs/benchmarks/<name>/<YYYYmmdd-HHMMSS-ffffff>``, so a benchmark re-runs as it is and never needs cleaning up.
A folder that holds anything already is refused, before any work, with one line (``cli``).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's transferlab, whichever copy is installed
    sys.path.insert(0, str(ROOT))

from transferlab.atomic import write_text  # noqa: E402
from transferlab.contracts.errors import TransferlabError  # noqa: E402

COMMAND_FILE = "command.txt"  # the first file of every benchmark folder: the command that made it


def outputs_root() -> Path:
    """Where benchmark folders go by default: ``$TRANSFERLAB_OUTPUTS/benchmarks`` (as ``paths.log_dir`` moves
    ``outputs/``), else ``outputs/benchmarks`` in this checkout."""
    return Path(os.environ.get("TRANSFERLAB_OUTPUTS") or ROOT / "outputs") / "benchmarks"


def _claim(folder: Path) -> list[str]:
    """Make ``folder`` this run's: create it (or take an empty one) and write ``command.txt`` exclusively, so of two
    runs started on one folder only one gets it. Returns [] on success, else the names the folder already holds."""
    if folder.exists() and not folder.is_dir():
        raise TransferlabError(f"--out {folder} is a file, not a folder; choose a new folder, or leave --out out for "
                               f"a new timestamped one")
    folder.mkdir(parents=True, exist_ok=True)
    held = sorted((p.name for p in folder.iterdir()), key=lambda name: (not name.startswith("result"), name))
    if held:
        return held
    try:
        fd = os.open(folder / COMMAND_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another run claimed it between the listing and here
        return [COMMAND_FILE]
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{shlex.join([Path(sys.executable).name, *sys.argv])}\n"
                     f"# started {datetime.now().isoformat(timespec='seconds')}, PID {os.getpid()}, cwd {Path.cwd()}\n")
    return []


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
            shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            raise TransferlabError(f"--out {out} already holds {shown}; a benchmark never writes into a used folder: "
                                   f"choose a new --out, or leave --out out for a new timestamped folder under "
                                   f"{outputs_root() / name}")
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


def cli(main) -> None:
    """A benchmark's ``__main__``: ``main(sys.argv[1:])``; a user error (a used ``--out``, a full disk, a bad
    override) is one line on stderr, ``transferlab: error: ...``, and exit code 2; a bug keeps its traceback."""
    from transferlab.entry import run_script

    def script(argv: list[str]) -> int:
        main(argv)
        return 0

    sys.exit(run_script(script))


def device_name(device: torch.device) -> str:
    """What the figures were measured on: the GPU's name, or the CPU model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if platform.system() != "Linux":
        return f"{platform.processor()}, {torch.get_num_threads()} threads"
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor())
    return f"{model}, {torch.get_num_threads()} threads"


def versions() -> str:
    import lightning
    return f"torch {torch.__version__}, lightning {lightning.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """``perf_counter`` after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


class StepTimer(L.Callback):
    """Wall time of the training steps after ``warmup`` steps, measured at batch boundaries (device synced)."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.end, self.steps = now(pl_module.device), self.steps + 1

    @property
    def seconds_per_step(self) -> float:
        return (self.end - self.start) / self.steps


def median(values) -> float:
    return statistics.median(values)


def report(out, rows, lines: list[str]) -> None:
    """Print the markdown ``lines`` and keep them, with the raw ``rows``, as ``out/result.md`` and
    ``out/result.json`` (each written atomically: a reader sees no file or the whole one)."""
    text = "\n".join(lines)
    print(text)
    out = Path(out)
    write_text(out / "result.json", json.dumps(rows, indent=2) + "\n")
    write_text(out / "result.md", text + "\n")
    print(f"results: {out}")
