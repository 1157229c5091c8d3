"""transferlab: transfer learning for computer vision on PyTorch Lightning + Hydra."""

import os

# Idle OpenMP threads spin briefly, then sleep (libgomp spins 30x longer by default), so processes that share cores
# (a parallel sweep's jobs, busy neighbours) do not steal them from each other. It takes effect when transferlab is
# imported before torch; OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment win (benchmarks/contention.py).
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

from transferlab.contracts.errors import TransferlabError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["TransferlabError", "__version__"]
