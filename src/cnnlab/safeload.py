"""The only place cnnlab unpickles anything: `torch.load(weights_only=True)`, never a full unpickle, no fallback.

A file that needs code to unpickle (a pickled function call such as `posix.system`) is refused with a one-line
CnnlabError that names the file and the callable; a damaged file gets a one-line "truncated or corrupted" error.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError


def first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load_weights_only(data: bytes, label: str, advice: str) -> object:
    """Unpickle `data` with torch's weights-only loader. `label` names the file in messages ("weights file X");
    `advice` follows the refusal of pickled code (what the user should do instead)."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise CnnlabError(f"{label} is truncated or corrupted ({first_line(error)})") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(error))  # the callable the pickle wanted, e.g. posix.system
        code = f" ({found.group(1)})" if found else ""
        raise CnnlabError(f"{label} holds pickled code{code}, which cnnlab refuses to unpickle for safety; {advice}") from None
    except Exception as error:  # truncated zip archives, bad headers, EOF
        raise CnnlabError(f"{label} is truncated or corrupted ({first_line(error)})") from None


def read_bytes(path: Path, label: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CnnlabError(f"{label} does not exist") from None
    except OSError as error:
        raise CnnlabError(f"cannot read {label}: {error.strerror or error}") from None
