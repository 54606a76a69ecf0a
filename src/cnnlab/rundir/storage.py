"""The package's only reader and writer of JSON files: a JSON object in, a JSON object out, written atomically
through `cnnlab.files.atomic_write` (temp file in the same folder, fsync, `os.replace`)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.errors import RunFileError, RunFileMissing
from cnnlab.files import write_text

# Run files are written with indent 2 (as cnnlab always wrote them); keys keep the order they were given.
INDENT = 2


def read_object(path: Path) -> dict:
    """The JSON object in `path`; a missing file is RunFileMissing, anything else unreadable a RunFileError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileMissing(path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(path, f"cannot be read: {getattr(error, 'strerror', None) or error}") from None
    except json.JSONDecodeError as error:
        raise RunFileError(path, f"is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RunFileError(path, f"holds a JSON {type(data).__name__}, not an object")
    return data


def write_object(path: Path, data: dict) -> None:
    """`data` as JSON, atomically: a reader sees the old file or the new one. Values JSON lacks (a Path, a
    numpy scalar) are written as their text, NaN as NaN (Python's json reads it back)."""
    write_text(Path(path), json.dumps(data, indent=INDENT, default=str) + "\n")
