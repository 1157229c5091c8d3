"""notebooks/quickstart.ipynb runs top to bottom (with fast parameters) and shows what it promises."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import snapshot

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
QUICKSTART = NOTEBOOKS / "quickstart.ipynb"

# The default job takes minutes; a few CPU steps at 32 px exercise every cell in seconds.
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "data.image_size=32", "callbacks.rich_progress_bar=null",
        "+trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "data.batch_size=16",
        "+trainer.num_sanity_val_steps=0"]


def code_cell_with(nb, text: str):
    return next(cell for cell in nb.cells if cell.cell_type == "code" and text in cell.source)


def stream_text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


def test_committed_notebook_is_clean():
    nb = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit the notebook with its outputs cleared"


def execute(nb):
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
    return nb


def prepared():
    """The notebook with fast parameters and a first cell naming the kernel's interpreter."""
    nb = nbformat.read(QUICKSTART, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f"OVERRIDES = {FAST!r}\nOUTPUT_DIR = None"
    # The kernel must be this interpreter (the venv with transferlab), not some other python3 on the machine.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print('KERNEL', sys.executable)"))
    return nb


def test_quickstart_runs_twice_without_touching_the_first_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path))  # the kernel inherits it: runs go under tmp_path
    first = execute(prepared())

    assert stream_text(first.cells[0]).strip() == f"KERNEL {sys.executable}"
    # Started in notebooks/, the notebook found the repository root and works from there.
    assert f"working in: {NOTEBOOKS.parent}" in stream_text(code_cell_with(first, "ROOT = "))
    [run] = sorted((tmp_path / "runs").iterdir())
    assert f"run folder: {run}" in stream_text(code_cell_with(first, "load_config("))

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    printed = stream_text(code_cell_with(first, "val_acc = train(cfg)"))
    assert f"test accuracy: {metrics['test']['test/acc']:.3f}" in printed
    assert re.search(rf"run folder +{re.escape(str(run))}", printed)  # the end-of-run summary

    plot_cell = code_cell_with(first, "plt.show()")
    assert any("image/png" in out.get("data", {}) for out in plot_cell.outputs), plot_cell.outputs
    figure_cell = code_cell_with(first, "confusion_matrix.png")
    assert any("image/png" in out.get("data", {}) for out in figure_cell.outputs), figure_cell.outputs

    # Run again, as a user pressing "run all" twice: a second folder; the first run's files are untouched.
    before = snapshot(run)
    execute(prepared())
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and runs[0] == run
    assert snapshot(run) == before
    assert json.loads((runs[1] / "metrics.json").read_text())["status"] == "completed"
