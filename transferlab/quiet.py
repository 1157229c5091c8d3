"""A quiet console: Lightning's known, harmless lines are dropped by their message, never by category or level.

``silence_noise`` (called by ``experiment.build``) installs warning filters and logging filters that match only
the messages below, so any other warning, of whatever category, still shows. ``tidy_callbacks`` gives the model
summary no empty FLOPs column and a progress bar writing to no terminal (a pipe, a log file) one line per bar.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Any

from lightning.pytorch.callbacks import ModelSummary, RichModelSummary, RichProgressBar
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

# Warnings, as regexes matched at the start of the message.
WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # torch deprecates what lightning's own _pytree uses
    # ours: the best checkpoint comes first, last.ckpt second, so "the first one" is the right one
    r'`\.\w+\(ckpt_path="best"\)` is called with Trainer configured with multiple `ModelCheckpoint`',
    r"Found \d+ module\(s\) in eval mode at the start of training",  # a frozen backbone is in eval mode on purpose
)
# Lightning's info lines (logging), as regexes matched at the start of the message.
INFO = (
    r"GPU available: ",
    r"TPU available: ",
    r"💡 Tip: .*litlogger",
    r"Trainer already configured with model summary callbacks",  # tidy_callbacks adds ours
    r"Experiment with name .* not found\. Creating it\.",  # logger=mlflow: each run folder holds a new store
)
INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                "lightning.pytorch.loggers.mlflow")
WIDE = 1000  # console columns when output is no terminal: a progress line is as long as its content, never wrapped


class DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``patterns`` (regexes)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


INFO_FILTER = DropMessages(INFO)


def silence_noise() -> None:
    """Filter the messages in ``WARNINGS`` and ``INFO``; idempotent, so every run may call it."""
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)  # re-adding moves it to the front, never duplicates
    for name in INFO_LOGGERS:
        logging.getLogger(name).addFilter(INFO_FILTER)  # a filter already there is not added twice


def tidy_callbacks(callbacks: list, model_summary: bool = True) -> list:
    """``callbacks`` with ``Summary`` as the model summary (unless one is there or ``model_summary`` is false), and
    every ``RichProgressBar`` on a ``WIDE`` console when output is no terminal and no notebook (``COLUMNS`` unset),
    so its metrics stay on the bar's line instead of wrapping into a column at rich's default 80 columns."""
    from rich.console import Console

    console = Console()
    if not (console.is_terminal or console.is_jupyter or "COLUMNS" in os.environ):
        for bar in callbacks:
            if isinstance(bar, RichProgressBar):
                bar._console_kwargs = {"width": WIDE, **bar._console_kwargs}  # read when the bar starts
    if model_summary and not any(isinstance(c, ModelSummary) for c in callbacks):
        callbacks = [*callbacks, Summary()]
    return callbacks


class Summary(RichModelSummary):
    """Lightning's rich model summary without the FLOPs column and total when no FLOPs were counted (Lightning counts
    them only for a module with an ``example_input_array``; without one it printed zeros)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        """Print the layer table and the totals; Lightning's own ``summarize`` when FLOPs were counted."""
        if total_flops:
            RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                       total_training_modes, total_flops=total_flops, **summarize_kwargs)
            return
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, style="dim" if name == " " else None, no_wrap=name == "Name",
                             justify="left" if name in ("Name", "Type", "Mode") else "right")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        totals = {"Trainable params": get_human_readable_count(int(trainable_parameters)),
                  "Non-trainable params": get_human_readable_count(int(total_parameters - trainable_parameters)),
                  "Total params": get_human_readable_count(int(total_parameters)),
                  "Total estimated model params size (MB)": get_formatted_model_size(model_size),
                  "Modules in train mode": total_training_modes["train"],
                  "Modules in eval mode": total_training_modes["eval"]}
        console = get_console()
        console.print(table)
        console.print("\n".join(f"[bold]{name}[/]: {str(value).strip()}" for name, value in totals.items()))
