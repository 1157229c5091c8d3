"""Multi-task data: derived tasks of digits and CIFAR-10, labels files for image folders, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli
from fakes import CIFAR10_CLASSES, make_fake_cifar10, make_image_tree, patched_cifar10_md5

from transferlab.contracts.errors import TransferlabError
from transferlab.data.cifar10 import CIFAR10DataModule
from transferlab.data.digits import DigitsDataModule
from transferlab.data.imagefolder import ImageFolderDataModule
from transferlab.experiment import build

CSV_TASKS = "strategy.tasks=[{name: scanner},{name: diagnosis},{name: age, kind: regression}]"


def test_digits_derived_tasks_yield_label_dicts():
    data = DigitsDataModule(image_size=16, batch_size=50, tasks=["digit", "parity", "ge5"])
    assert data.tasks["parity"] == {"num_classes": 2, "class_names": ["even", "odd"], "kind": "multiclass"}
    data.setup("fit")
    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (50, 3, 16, 16) and set(labels) == {"digit", "parity", "ge5"}
    assert torch.equal(labels["parity"], labels["digit"] % 2)
    assert torch.equal(labels["ge5"], (labels["digit"] >= 5).long())
    assert DigitsDataModule().tasks is None  # single-task as before


def test_cifar10_derived_tasks(tmp_path):
    make_fake_cifar10(tmp_path)
    with patched_cifar10_md5(tmp_path):
        data = CIFAR10DataModule(root=tmp_path, download=False, image_size=32, tasks=["object", "coarse"])
        data.setup("fit")
    assert data.tasks["coarse"]["class_names"] == ["animal", "vehicle"]
    _, labels = data.test_set[0]
    vehicles = {"airplane", "automobile", "ship", "truck"}
    for i in range(len(data.test_set)):
        _, labels = data.test_set[i]
        assert labels["coarse"] == int(CIFAR10_CLASSES[labels["object"]] in vehicles)


@pytest.fixture
def labelled_tree(tmp_path):
    """Two class folders of 12 images and a labels file: diagnosis (= folder), scanner (every 3rd missing), age."""
    root = make_image_tree(tmp_path / "images", classes=("normal", "tumour"), per_class=12, size=24)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))
    rows = [f"{f},{int(f.startswith('tumour'))},{'' if i % 3 == 0 else i % 2},{'' if i % 4 == 0 else 40 + i}"
            for i, f in enumerate(files)]
    return root, files, ["path,diagnosis,scanner,age", *rows]


def write(tmp_path, lines):
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_labels_csv_trains_multitask_with_missing_labels(make_cfg, tmp_path, labelled_tree):
    root, files, lines = labelled_tree
    csv = write(tmp_path, lines)
    cfg = make_cfg("data=imagefolder", f"data.root={root}", f"data.labels_csv={csv}", "data.num_workers=0",
                   "data.persistent_workers=false", "strategy=multitask", CSV_TASKS, "logger=none")
    _, datamodule, module, trainer = build(cfg)
    assert datamodule.tasks["scanner"]["num_classes"] == 2 and datamodule.tasks["age"]["kind"] == "regression"
    datamodule.setup("fit")
    assert sum(len(s) for s in (datamodule.train_set, datamodule.val_set, datamodule.test_set)) == len(files)
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape[1:] == (3, 32, 32) and labels["scanner"].min() == -1 and labels["age"].isnan().any()
    trainer.fit(module, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.test(module, datamodule=datamodule, verbose=False)
    assert torch.isfinite(trainer.callback_metrics["test/task/age/mae"])
    # the confusion matrix is the first task's (scanner), over its labelled test images only
    counts = np.loadtxt(tmp_path / "run" / "figures" / "confusion_matrix.csv", delimiter=",", skiprows=1,
                        usecols=(1, 2))
    assert counts.sum() == int((datamodule.test_set.labels["scanner"] >= 0).sum()) > 0


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:3] + ["missing/x.png,0,1,50"] + lines[3:], r"row 4: image 'missing/x.png' not found"),
    (lambda lines: lines[:5] + [lines[2]] + lines[5:], r"row 6: .* is listed twice \(also row 3\)"),
    (lambda lines: lines[:2] + [lines[2].replace(",1,", ",tumour,", 1).replace(",0,", ",tumour,", 1)] + lines[3:],
     r"row 3, column diagnosis: 'tumour' is not a class index"),
    (lambda lines: lines[:7] + [lines[7].split(",", 1)[0] + ",5" + "," + lines[7].split(",", 2)[2]] + lines[8:],
     r"row 8, column diagnosis: label 5 is outside 0..1 \(num_classes=2\)"),
    (lambda lines: lines[:4] + [lines[4].rsplit(",", 1)[0] + ",old"] + lines[5:],
     r"row 5, column age: 'old' is not a number"),
])
def test_bad_labels_csv_names_the_row(tmp_path, labelled_tree, edit, message):
    root, _, lines = labelled_tree
    tasks = [{"name": "diagnosis", "num_classes": 2}, {"name": "scanner"}, {"name": "age", "kind": "regression"}]
    with pytest.raises(TransferlabError, match=message):
        ImageFolderDataModule(root=root, labels_csv=write(tmp_path, edit(lines)), tasks=tasks)


def test_bad_labels_csv_is_one_line_on_the_command_line(tmp_path, labelled_tree):
    root, _, lines = labelled_tree
    csv = write(tmp_path, lines[:3] + [lines[2]] + lines[3:])
    result = run_cli("data=imagefolder", f"data.root={root}", f"data.labels_csv={csv}", "strategy=multitask",
                     CSV_TASKS, "logger=none", cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("transferlab: error:")]
    assert len(errors) == 1 and "row 4:" in errors[0] and "listed twice (also row 3)" in errors[0]
    assert "Traceback" not in result.stderr


def test_folder_label_as_a_task(tmp_path):
    root = make_image_tree(tmp_path / "images", classes=("a", "b"), per_class=10, size=24)
    data = ImageFolderDataModule(root=root, image_size=16, tasks=["class"])
    assert data.tasks == {"class": {"num_classes": 2, "class_names": ["a", "b"], "kind": "multiclass"}}
    data.setup("fit")
    labels = np.array([data.train_set[i][1]["class"] for i in range(len(data.train_set))])
    assert set(labels) == {0, 1}
