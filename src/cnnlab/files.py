"""Crash-safe files: every write goes to a temp file in the same directory, is flushed and fsynced, then renamed
over the target with `os.replace`, so a reader sees the old file or the new one, never half of one.

Checkpoints, run records and every results file (tables, CSVs, JSON) are written through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cnnlab.errors import CnnlabError


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path = Path(path)
    # One temp name per process and thread: the lab's threads may write the same record (each under its lock).
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):  # no temp file to remove when its folder is missing or is a file
            tmp.unlink(missing_ok=True)
        raise CnnlabError(f"could not write {path}: {error.strerror or error}") from error
    # Persist the rename itself; without this a power cut can forget it.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")
