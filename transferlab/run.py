"""Hydra entry point: compose -> seed -> instantiate -> fit -> test -> metrics.json (``transferlab.experiment``).

    python -m transferlab.run                                   # efficientnet_lite0 fine-tuned on digits
    python -m transferlab.run model=resnet50 strategy=linear_probe data=imagefolder data.root=/data/ct
    python -m transferlab.run -m strategy.freeze_depth=0,2,4 optimizer.lr=1e-2,1e-3
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from transferlab.callbacks.preemption import EXIT_CODE
from transferlab.contracts.errors import print_error, report, user_error
from transferlab.entry import run_app
from transferlab.experiment import CONFIG_PACKAGE, train


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config")  # also when installed
def main(cfg: DictConfig) -> float | None:
    """Train; return the monitored value for sweepers, or None for a job without one (failed, or no such metric),
    which the Optuna sweeper records as a failed trial (a NaN would end its whole search)."""
    try:
        value = train(cfg)
        return None if math.isnan(value) else value
    except SIGTERMException:  # callbacks.preemption saved last.ckpt and said so
        if (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file():
            print("transferlab: continue with the same command and resume=auto", file=sys.stderr)
        sys.exit(EXIT_CODE)
    except Exception as err:
        problem = user_error(err)
        if problem is None:
            raise  # a bug: its traceback
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            report(problem)  # one line, exit code 2 (before Hydra adds "Error executing job with overrides")
        print_error(problem)
        return None  # this job failed (see its metrics.json); the sweep goes on


def cli() -> None:
    """The ``transferlab`` console script: ``transferlab k=v ...`` is ``python -m transferlab.run k=v ...``."""
    run_app(main)


if __name__ == "__main__":
    cli()
