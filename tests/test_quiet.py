"""A run's console carries no known Lightning noise, while any other warning still shows: the filters in
``transferlab.quiet`` match messages, never categories."""

from __future__ import annotations

import logging
import os
import re
import warnings

import pytest
from conftest import ROOT, run_cli
from lightning.pytorch.callbacks import Callback

from transferlab import quiet

NOISE = ["GPU available", "TPU available", "litlogger", "LeafSpec", "multiple `ModelCheckpoint`", "FLOPs",
         "module(s) in eval mode", "Trainer already configured with model summary"]
REAL = "transferlab test: a real warning"


class RealWarning(Callback):
    """Warns once when training starts (a test-only callback)."""

    def on_train_start(self, trainer, pl_module):
        warnings.warn(REAL, UserWarning, stacklevel=1)


def test_a_frozen_run_prints_no_known_noise_but_a_real_warning_and_one_line_bars(tmp_path):
    env = {"PYTHONWARNINGS": "", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}  # warnings on
    result = run_cli("strategy=linear_probe", "data.image_size=32", "data.batch_size=8", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                     "callbacks.evaluation_figures=null", "+callbacks.real_warning._target_=test_quiet.RealWarning",
                     cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert [n for n in NOISE if n in output] == [], output
    assert REAL in output  # another warning, of a category the filters also see, is not hidden
    assert "Trainable params" in output and "Modules in eval mode: 273" in output  # the summary itself stays
    # no terminal: the bar and its metrics on one line, not wrapped into a column
    assert re.search(r"Epoch 0/0 .* 2/2 .*train/loss_step: \S+ val/loss: \S+ val/acc: \S+", output), output


@pytest.mark.parametrize("message,hidden", [
    ("`isinstance(treespec, LeafSpec)` is deprecated, use ...", True),
    ("Found 273 module(s) in eval mode at the start of training. This may lead to ...", True),
    ('`.test(ckpt_path="best")` is called with Trainer configured with multiple `ModelCheckpoint` callbacks.', True),
    ("Found 273 NaN values in the batch", False),
    ("something else is deprecated: LeafSpec", False),
])
def test_warning_filters_match_messages_not_categories(message, hidden):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.silence_noise()
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.warn(message, category, stacklevel=1)
    assert len(caught) == (0 if hidden else 3)


@pytest.mark.parametrize("message,hidden", [
    ("GPU available: True (cuda), used: True", True),
    ("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)", True),
    ("Experiment with name transferlab not found. Creating it.", True),
    ("`Trainer.fit` stopped: `max_epochs=1` reached.", False),
    ("Restoring states from the checkpoint path at /x/best.ckpt", False),
])
def test_log_filter_drops_only_its_messages(message, hidden):
    record = logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, __file__, 1, message, None, None)
    assert quiet.INFO_FILTER.filter(record) is not hidden
