"""The suite's parts in running order: ``(name, fn)``, where ``name`` is ``<section>/<part>`` and ``fn(part, env)``
measures into ``part.record``. Parity, throughput and extraction run eager and compiled; the compiled part is
skipped in --dry-run."""

from __future__ import annotations

from collections.abc import Callable

from ..budget import Part, Skipped, SuiteEnv
from . import dataload, domain_adaptation, extraction, parity, throughput

PartFn = Callable[[Part, SuiteEnv], None]


def eager_and_compiled(section: str, run: Callable[..., None]) -> tuple[tuple[str, PartFn], ...]:
    """``<section>/eager`` and ``<section>/compile``: ``run(part, env, compiled=...)``."""

    def eager(part: Part, env: SuiteEnv) -> None:
        run(part, env, compiled=False)

    def compiled(part: Part, env: SuiteEnv) -> None:
        if env.dry_run:
            raise Skipped("torch.compile is skipped on the CPU in --dry-run")
        run(part, env, compiled=True)

    return (f"{section}/eager", eager), (f"{section}/compile", compiled)


PARTS: tuple[tuple[str, PartFn], ...] = (
    *eager_and_compiled("parity", parity.run),
    *eager_and_compiled("throughput", throughput.run),
    *eager_and_compiled("extraction", extraction.run),
    ("dataload/loaders_and_training", dataload.run),
    ("dann/step_cost", domain_adaptation.run),
)
