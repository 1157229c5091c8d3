"""The one exception type for user-facing problems, and the one way it is written: a single line on stderr."""

from __future__ import annotations

import errno
import sys

EXIT_USER_ERROR = 2
PREFIX = "transferlab: error: "

_WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


class TransferlabError(Exception):
    """A problem the user can fix; the entry points print it as one line and exit non-zero."""


def one_line(err: BaseException | str) -> str:
    """``err``'s message on one line: multi-line messages (Hydra's, PIL's) joined with '; '."""
    lines = [" ".join(line.split()) for line in str(err).splitlines()]
    text = "; ".join(line for line in lines if line)
    return text or (type(err).__name__ if isinstance(err, BaseException) else "")


def user_error(err: BaseException | None) -> TransferlabError | None:
    """The TransferlabError behind ``err`` (Hydra wraps errors raised inside instantiated targets), if any.

    A full disk, a read-only folder or a missing permission (an ``OSError`` anywhere in the chain) is a user error
    too: one line naming the file.
    """
    while err is not None:
        if isinstance(err, TransferlabError):
            return err
        if isinstance(err, OSError) and err.errno in _WRITE_ERRORS:
            return TransferlabError(f"{_WRITE_ERRORS[err.errno]}: {err.filename or 'a file'}; free space or fix the "
                                    f"permissions, or set paths.log_dir (or hydra.run.dir) to a writable folder")
        err = err.__cause__ or err.__context__
    return None


def print_error(err: BaseException | str) -> None:
    """Write ``err`` as the one user-error line on stderr."""
    print(f"{PREFIX}{one_line(err)}", file=sys.stderr)


def report(err: BaseException | str) -> None:
    """Print ``err`` as the one-line user error and exit with code 2."""
    print_error(err)
    sys.exit(EXIT_USER_ERROR)
