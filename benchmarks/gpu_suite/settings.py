"""The suite's sections and their sizes: the GPU run (ResNet-50 at 224 px, bf16) and the CPU dry run (tiny, fp32)."""

from __future__ import annotations

SECTIONS = ("parity", "throughput", "extraction", "dataload", "dann")


def gpu_settings(cpus: int) -> dict:
    """Sizes, steps and per-part time budgets (seconds) for one GPU.

    Args:
        cpus: CPU cores of the machine; the DataLoader workers of the data-loading section are taken from them.
    """
    return {
        "model": "resnet50", "size": 224, "batch": 256, "precision": "bf16-mixed", "channels_last": True,
        "parity": {"warmup": 5, "steps": 30, "repeats": 5},
        "throughput": {"warmup": 5, "steps": 30, "repeats": 3},
        "extraction": {"batch": 256, "warmup": 5, "steps": 40, "repeats": 3},
        "dataload": {"model": "resnet18", "size": 32, "batch": 512, "images": 50_000,
                     "workers": max(1, min(8, cpus - 2)), "warmup_batches": 3, "batches": 40, "warmup": 5,
                     "steps": 30, "repeats": 2},
        "dann": {"model": "resnet50", "size": 224, "batch": 64, "warmup": 5, "steps": 20, "repeats": 3,
                 "photos": None},
        # a part stops at its budget (sum 425 s, plus start-up: within the wrapper's 480 s cap)
        "budgets": {"parity/eager": 50, "parity/compile": 160, "throughput/eager": 20, "throughput/compile": 35,
                    "extraction/eager": 15, "extraction/compile": 45, "dataload/loaders_and_training": 35,
                    "dann/step_cost": 65},
    }


def dry_settings() -> dict:
    """The ``--dry-run`` sizes: the same code path on the CPU at tiny sizes, compile skipped."""
    return {  # ResNet-18 (not 50): on 2 busy CPU cores every second counts, and the code path is the same
        "model": "resnet18", "size": 32, "batch": 4, "precision": "32-true", "channels_last": True,
        "parity": {"warmup": 1, "steps": 2, "repeats": 2},
        "throughput": {"warmup": 1, "steps": 2, "repeats": 2},
        "extraction": {"batch": 4, "warmup": 1, "steps": 2, "repeats": 2},
        "dataload": {"model": "resnet18", "size": 32, "batch": 8, "images": 256, "workers": 0,
                     "warmup_batches": 1, "batches": 3, "warmup": 1, "steps": 2, "repeats": 1},
        "dann": {"model": "resnet18", "size": 32, "batch": 4, "warmup": 1, "steps": 2, "repeats": 2,
                 "photos": ["astronaut"]},
        "budgets": {"parity/eager": 60, "parity/compile": 5, "throughput/eager": 30, "throughput/compile": 5,
                    "extraction/eager": 30, "extraction/compile": 5, "dataload/loaders_and_training": 60,
                    "dann/step_cost": 60},
    }
