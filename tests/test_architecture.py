"""The layering, read from the source: imports only point down, contracts -> components -> strategies -> entry points.

A move that breaks it fails here with the offending file and import, so the house stays built the way README's
"Layout" section describes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "transferlab"

# Floor of each first-level module or package under transferlab/.
FLOORS = {
    "contracts": 0,
    **dict.fromkeys(("backbones", "heads", "losses", "data", "callbacks", "metrics", "atomic", "rng", "optim",
                     "extract", "quiet", "threads"), 1),
    "strategies": 2,
    **dict.fromkeys(("experiment", "run", "eval", "predict", "export", "rank", "entry", "run_folder", "resume",
                     "analysis", "report", "loggers", "__init__"), 3),
}
# Components that must not know each other (data never needs a network; a network never needs a dataset).
APART = {("data", "backbones"), ("backbones", "data"), ("data", "heads"), ("data", "losses"), ("heads", "data")}


def part(module: str) -> str:
    """``transferlab.data.base`` -> ``data``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imports() -> list[tuple[str, str, str]]:
    """(file, importing part, imported part) for every ``transferlab`` import, lazy ones included."""
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        relative = file.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        for node in ast.walk(ast.parse(file.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name == "transferlab" or name.startswith("transferlab."):
                    found.append((str(file.relative_to(PACKAGE.parent)), part(module), part(name)))
    return found


def test_every_module_has_a_floor():
    unknown = sorted({p for _, a, b in imports() for p in (a, b) if p not in FLOORS})
    assert not unknown, f"add {unknown} to FLOORS (and to README's layout)"


def test_imports_only_point_down_or_sideways_within_a_floor():
    upward = [f"{file}: {a} imports {b}" for file, a, b in imports()
              if a in FLOORS and b in FLOORS and FLOORS[b] > FLOORS[a]]
    assert not upward, "\n".join(upward)


def test_contracts_import_nothing_else_of_ours():
    assert [f for f, a, b in imports() if a == "contracts" and b != "contracts"] == []


@pytest.mark.parametrize("importer,imported", sorted(APART))
def test_components_that_stay_apart(importer, imported):
    assert [f for f, a, b in imports() if (a, b) == (importer, imported)] == []


def test_strategies_do_not_import_data_and_entry_points_share_one_library_module():
    found = imports()
    assert [f for f, a, b in found if a == "strategies" and b == "data"] == []
    assert [f for f, a, b in found if b == "run"] == []  # run.py is the thin Hydra script: nothing imports it
