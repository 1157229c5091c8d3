"""Atomic file writes: a temp file in the same folder, fsynced, then renamed over the final name.

A crash, a kill or a full disk therefore never leaves a partial file under a final name: readers see the old file
or the whole new one. A full disk becomes one ``TransferlabError`` naming the file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from transferlab.contracts.errors import TransferlabError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_error(err: OSError, path: str | Path) -> TransferlabError | None:
    """The one-line error for a full disk (or quota) while writing ``path``; None for other OS errors."""
    if err.errno in _DISK_FULL:
        return TransferlabError(f"no space left on device while writing {path}; free some space (or set "
                                f"paths.log_dir to another disk) and continue with resume=auto")
    return None


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on a clean exit it is fsynced and renamed to ``path``, else removed.

    The temp file is created by ``open``, so the result has the permissions a plain ``open`` gives (0666 less the
    umask: 0644 under the usual 022), not the 0600 of ``tempfile.mkstemp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and (problem := disk_error(err, path)) is not None:
            raise problem from None
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def save_figure(figure, path: str | Path, **kwargs) -> None:
    """``figure.savefig`` to ``path`` atomically (the format comes from the suffix)."""
    path = Path(path)
    with atomic_open(path) as handle:
        figure.savefig(handle, format=path.suffix.lstrip(".") or "png", **kwargs)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: checkpoints are written beside their final name and renamed.

    Lightning's own writer serialises to memory and then writes the final file in place, so a crash or a full disk
    mid-write leaves a truncated ``.ckpt`` under its final name (which ``resume`` would then try to load).
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_open(path) as handle:
            torch.save(checkpoint, handle)
