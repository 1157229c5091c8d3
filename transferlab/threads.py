"""CPU threads: how many a run uses (the ``threads`` key), and the record of threads, versions and CPU that makes a
result reproducible (CPU runs are bit-identical only at the same thread count).

Idle OpenMP threads normally spin for a while (libgomp: ~300,000 iterations) waiting for work; beside other busy
processes (neighbours, or the other jobs of a parallel sweep) the spinning threads of each process steal the cores
the others compute on. ``transferlab`` therefore sets ``GOMP_SPINCOUNT=10000`` (a short spin, then sleep) when it is
imported before torch (``transferlab/__init__.py``), unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is already
set; ``benchmarks/contention.py`` measures the effect.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from transferlab.contracts.errors import TransferlabError

PACKAGES = ("torch", "torchvision", "lightning", "timm", "hydra-core", "transferlab")


def available_cpus() -> int:
    """The CPUs this process may use: its affinity mask (``taskset``, SLURM's ``--cpus-per-task``), capped by a cgroup
    CPU quota (``docker --cpus``) when one is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def resolve_threads(value) -> int:
    """The intra-op thread count for ``threads=value``: the value itself, or for null ``OMP_NUM_THREADS`` when set
    (joblib sets it per worker in parallel sweeps) and else ``available_cpus()``."""
    if value is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        return int(env) if env.isdigit() and int(env) > 0 else available_cpus()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TransferlabError(f"threads={value!r} must be an integer >= 1 (or null: the CPUs this process may use)")
    return value


def set_threads(value) -> int:
    """Set torch's intra-op thread count from the ``threads`` key; return it."""
    import torch

    threads = resolve_threads(value)
    torch.set_num_threads(threads)
    return threads


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def package_versions(names=PACKAGES) -> dict:
    """Python's version and each installed package's (None when not installed), read without importing them."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def versions_line(names=("torch", "lightning", "timm")) -> str:
    """``torch 2.x, lightning 2.y, timm 1.z``: the versions a benchmark's table names."""
    return ", ".join(f"{name} {version}" for name, version in package_versions(names).items() if name != "python")


def environment() -> dict:
    """What a CPU result depends on: torch's thread counts, the OpenMP wait policy, the CPU and the versions."""
    import torch

    versions = package_versions()
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
            "cpus_available": available_cpus(),
            "cpu": cpu_model(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "versions": versions}
