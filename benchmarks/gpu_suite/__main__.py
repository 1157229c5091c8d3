"""``python benchmarks/gpu_suite`` (what ``benchmarks/gpu_suite.sh`` runs), from any working directory."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this checkout's transferlab, then benchmarks/ (out_folder, common, this package); not this folder itself, whose
# module names (settings, record, ...) must not shadow others'
sys.path[:] = [str(HERE.parents[1]), str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from gpu_suite.cli import main  # noqa: E402

sys.exit(main())
