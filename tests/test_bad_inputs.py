"""GUIDE.md section 7's bad inputs, each through the real command line (in-process for speed): one line
``transferlab: error: ...`` naming the problem, exit code 2, no traceback, and an earlier run left byte for byte.

Unit-level checks of the same inputs live in test_data_imagefolder.py (e.g. that 16-bit pixels scale to 8 bits
without saturating); these tests check what a user of the CLI sees.
"""

from __future__ import annotations

import errno
import json
import os
import re

import pytest
import torch
from conftest import FAST, compose_config, run_in_process, snapshot
from fakes import make_image_tree
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from test_data_imagefolder import jpeg_bytes

from transferlab import atomic
from transferlab.experiment import train
from transferlab.run import main

QUICK = ["data.image_size=32", "data.batch_size=4", "callbacks.rich_progress_bar=null",
         "callbacks.evaluation_figures=null", "logger=none", "+trainer.enable_progress_bar=false"]
FOLDER = ["data=imagefolder", "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder whose outputs/ already holds a finished run (checkpoints, metrics.json) that must never change."""
    root = tmp_path_factory.mktemp("cli")
    train(compose_config(root / "outputs" / "runs" / "earlier", *FAST, "logger=none",
                         "callbacks.evaluation_figures=null"))
    GlobalHydra.instance().clear()
    return root


def images(tmp_path, **kwargs):
    return make_image_tree(tmp_path / "images", **{"per_class": 6, "size": 16, **kwargs})


def truncated_jpeg(tmp_path):
    root = images(tmp_path)
    (root / "dog" / "cut.jpg").write_bytes(jpeg_bytes()[:400])
    return root


def split_tree(tmp_path, train=9, val_classes=("cat", "dog")):
    make_image_tree(tmp_path / "images" / "train", per_class=train, size=16)
    make_image_tree(tmp_path / "images" / "val", classes=val_classes, per_class=2, size=16)
    make_image_tree(tmp_path / "images" / "test", per_class=2, size=16)
    return tmp_path / "images"


def bad_checkpoint(tmp_path, workdir):
    data = (workdir / "outputs" / "runs" / "earlier" / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "last.ckpt").write_bytes(data[: len(data) // 2])
    return tmp_path / "last.ckpt"


def setup_case(case, tmp_path, workdir, monkeypatch) -> list[str]:
    """The command-line arguments of bad input ``case`` (building its files in ``tmp_path``)."""
    earlier = workdir / "outputs" / "runs" / "earlier"
    if case == "1-missing-root":
        return [*FOLDER, f"data.root={tmp_path / 'nowhere'}"]
    if case == "2-empty-class":
        (images(tmp_path) / "emu").mkdir()
        return [*FOLDER, f"data.root={tmp_path / 'images'}"]
    if case == "3-no-classes":
        (tmp_path / "images").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / "loose.png")
        return [*FOLDER, f"data.root={tmp_path / 'images'}"]
    if case in ("4-truncated-jpeg", "4-truncated-jpeg-skipped"):
        return [*FOLDER, f"data.root={truncated_jpeg(tmp_path)}", *(["data.on_corrupt=skip"] if "skip" in case else [])]
    if case == "5-zero-byte-image":
        (images(tmp_path) / "cat" / "empty.png").write_bytes(b"")
        return [*FOLDER, f"data.root={tmp_path / 'images'}"]
    if case == "6-16-bit-png":
        return [*FOLDER, f"data.root={images(tmp_path, modes=('I;16',))}"]
    if case == "7-decompression-bomb":
        Image.new("L", (200, 200)).save(images(tmp_path) / "cat" / "bomb.png")
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
        return [*FOLDER, f"data.root={tmp_path / 'images'}"]
    if case == "8-symlink-loop":
        (images(tmp_path) / "cat" / "again").symlink_to(tmp_path / "images" / "cat", target_is_directory=True)
        return [*FOLDER, f"data.root={tmp_path / 'images'}"]
    if case == "9-different-class-names":
        return [*FOLDER, f"data.root={split_tree(tmp_path, val_classes=('cat', 'dgo'))}"]
    if case == "10-batch-of-one":  # 18 training images in batches of 17: the last batch of 1 must never reach BN
        return [*FOLDER, f"data.root={split_tree(tmp_path)}", "trainer.max_epochs=1",
                "trainer.limit_val_batches=1", "test=false", "data.batch_size=17"]
    if case == "14-truncated-last-ckpt":
        return [f"resume={bad_checkpoint(tmp_path, workdir)}"]
    if case == "15-head-classes-differ":
        return [*FOLDER, f"data.root={images(tmp_path)}", f"resume={earlier / 'checkpoints' / 'last.ckpt'}"]
    if case == "existing-run-folder":
        return [f"hydra.run.dir={earlier}"]
    if case == "one-class-folder":
        return [*FOLDER, f"data.root={images(tmp_path, classes=('cat',))}"]
    if case == "class-with-one-image":
        make_image_tree(tmp_path / "images", classes=("emu",), per_class=1, size=16)
        return [*FOLDER, f"data.root={images(tmp_path)}"]
    if case == "garbage-weights":
        (tmp_path / "w.pth").write_bytes(b"this is no torch file" * 10)
        return [f"model.weights={tmp_path / 'w.pth'}"]
    if case.split(" ")[0] in GPU_CASES and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the case is a machine without one")
    if case == "full-disk":  # every checkpoint write fails half way, as on a full disk
        real_save = torch.save

        def save_half_then_fail(obj, handle, *args, **kwargs):
            real_save(obj, handle, *args, **kwargs)
            handle.truncate(handle.tell() // 2)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(atomic.torch, "save", save_half_then_fail)
        return ["debug=default", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]
    if case == "read-only-outputs":
        real_open, readonly = os.open, str(tmp_path / "ro")

        def read_only_open(path, *args, **kwargs):
            if str(path).startswith(readonly):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only_open)
        return [f"hydra.run.dir={tmp_path / 'ro' / 'run'}"]
    if case.startswith("da-"):
        source = images(tmp_path)
        target = {"da-same-folder": source, "da-empty-target": tmp_path / "flat",
                  "da-target-below-one-batch": tmp_path / "flat"}[case]
        target.mkdir(exist_ok=True)
        if case == "da-target-below-one-batch":  # 3 images: 2 held out for validation, 1 to train on
            for i in range(3):
                Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(target / f"t{i}.png")
        return ["strategy=dann", "data=domain_pair", f"data.source={source}", f"data.target={target}",
                "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false"]
    return case.split(" ", 1)[1].split()  # "<n>-... <overrides>": plain overrides


CASES = {
    "1-missing-root": "data.root=.*nowhere does not exist",
    "2-empty-class": "class folder .*emu has no images",
    "3-no-classes": "no class folders in .*images",
    "4-truncated-jpeg": "(?i)1 unreadable image.*cut.jpg .*truncated",
    "5-zero-byte-image": "1 unreadable image.*empty.png \\(empty file\\)",
    "7-decompression-bomb": "bomb.png \\(decompression bomb",
    "8-symlink-loop": "symlink loop: .*cat/again",
    "9-different-class-names": "class folders differ .* only in train: \\['dog'\\], only in val: \\['dgo'\\]",
    "11a-lr-not-a-number optimizer.lr=abc": "optimizer.lr='abc' is not a number",
    "11b-unknown-strategy strategy=dan": "Could not find 'strategy/dan'",
    "11c-misspelt-key optimizer.lrr=0.1": "Could not override 'optimizer.lrr'",
    "11d-unknown-option +optimizer.lrr=0.1": "optimizer.lrr is not an option of torch.optim.AdamW \\(remove it, or "
                                             "check its spelling\\); did you mean optimizer.lr\\?",
    "11e-unknown-option-through-kwargs +strategy.freeze_dept=2": "strategy.freeze_dept is not an option of "
                                                                 "transferlab.strategies.Finetune .*did you mean "
                                                                 "strategy.freeze_depth\\?",
    "11f-unknown-trainer-option +trainer.max_epoch=1": "trainer.max_epoch is not an option of lightning.Trainer .*"
                                                       "did you mean trainer.max_epochs\\?",
    "12a-negative-lr optimizer.lr=-1": "optimizer.lr=-1 must be > 0",
    "12b-zero-batch data.batch_size=0": "data.batch_size=0 must be >= 1",
    "12c-fraction data.val_fraction=1.5": "data.val_fraction=1.5 must be in \\(0, 1\\)",
    "13-freeze-depth strategy.freeze_depth=9": "strategy.freeze_depth=9 is out of range: efficientnet_lite0 has 8",
    "14-missing-ckpt resume=/no/such/last.ckpt": "resume=/no/such/last.ckpt: no such checkpoint",
    "14-truncated-last-ckpt": "resume=.*last.ckpt: unreadable checkpoint",
    "15-head-classes-differ": "checkpoint tensor head.* has shape \\(10, 1280\\) .*the data has 2 classes",
    "existing-run-folder": "earlier already holds a run \\(metrics.json, checkpoints\\); it is never overwritten",
    "one-class-folder": "data.root=.*images has one class folder \\(cat\\); classification needs at least 2",
    "class-with-one-image": "class folder\\(s\\) emu \\(1\\) have fewer than 2 images",
    "garbage-weights": "cannot read weights from .*w.pth: not a complete file saved by torch.save",
    "gpu-without-one trainer=gpu": "trainer.accelerator=gpu needs a CUDA GPU .*use trainer=cpu",
    "ddp-without-gpu trainer=ddp trainer.devices=2": "trainer.accelerator=gpu needs a CUDA GPU .*use trainer=cpu",
    "max-epochs-zero trainer.max_epochs=0": "trainer.max_epochs=0 trains nothing",
    "full-disk": "no space left on device while writing .*\\.ckpt",
    "read-only-outputs": "read-only file system: .*ro/run.*writable folder",
    "da-same-folder": "data.source and data.target are the same folder .*images.*needs two domains",
    "da-empty-target": "data.target=.*flat has no images",
    "da-target-below-one-batch": "data.target: its training split has 1 image\\(s\\), fewer than one batch "
                                 "\\(data.batch_size=4\\)",
}


GPU_CASES = ("gpu-without-one", "ddp-without-gpu")  # debug configs would force the CPU


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, workdir, tmp_path, monkeypatch):
    before = snapshot(workdir / "outputs" / "runs" / "earlier")
    monkeypatch.chdir(workdir)
    fast = [] if case.split(" ")[0] in GPU_CASES else ["debug=fdr"]
    code, err = run_in_process(main, *QUICK, *fast, *setup_case(case, tmp_path, workdir, monkeypatch),
                               monkeypatch=monkeypatch)
    lines = [line for line in err.splitlines() if line.startswith("transferlab: error:")]
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert "Traceback" not in err
    assert re.search(CASES[case], lines[0]), lines[0]
    assert snapshot(workdir / "outputs" / "runs" / "earlier") == before


@pytest.mark.parametrize("case", ["4-truncated-jpeg-skipped", "6-16-bit-png", "10-batch-of-one"])
def test_inputs_that_must_just_work(case, workdir, tmp_path, monkeypatch):
    before = snapshot(workdir / "outputs" / "runs" / "earlier")
    monkeypatch.chdir(workdir)
    known = set((workdir / "outputs" / "runs").iterdir())
    fast = [] if case == "10-batch-of-one" else ["debug=fdr"]
    code, err = run_in_process(main, *QUICK, *fast, *setup_case(case, tmp_path, workdir, monkeypatch),
                               monkeypatch=monkeypatch)
    assert code == 0 and "transferlab: error" not in err, err[-3000:]
    [run] = set((workdir / "outputs" / "runs").iterdir()) - known
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert snapshot(workdir / "outputs" / "runs" / "earlier") == before
    if "skipped" in case:  # a counted skip, with the file list in the run folder
        assert (run / "skipped_images.txt").read_text().startswith(str(tmp_path / "images" / "dog" / "cut.jpg"))
