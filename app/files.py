"""Files that hold annotations, accounts or keys are readable by their owner only (0600).

Created with that mode from the start (not chmod-ed afterwards, which leaves a window), so the
process umask does not matter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_MODE = 0o600


def open_private(path: Path) -> BinaryIO:
    """`path` opened for writing (truncated), mode 0600 even if it existed before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)
    return os.fdopen(fd, "wb")


def make_private(path: Path) -> None:
    """Creates `path` empty with mode 0600 if it is missing; otherwise takes away the group's
    and others' access. SQLite gives its -wal and -shm files the mode of the database file, so
    a database file made here keeps those private too."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)
        return
    os.close(fd)
