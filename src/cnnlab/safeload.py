"""The only place cnnlab unpickles anything: `torch.load(weights_only=True)`, never a full unpickle, no fallback.

A file that needs code to unpickle (a pickled function call such as `posix.system`) is refused with a one-line
`UnsafePickleError` that names the file and the callable, found from the pickle's opcodes before torch unpickles
anything; a damaged file gets a one-line "truncated or corrupted" error.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError, UnsafePickleError


def first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load_weights_only(data: bytes, label: str, advice: str) -> object:
    """Unpickle `data` with torch's weights-only loader. `label` names the file in messages ("weights file X");
    `advice` follows the refusal of pickled code (what the user should do instead)."""
    refused = unsafe_globals(data)
    if refused:
        raise UnsafePickleError(label, refused, advice)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # the weights-only unpickler refused an opcode (a plain or legacy-format pickle)
        raise UnsafePickleError(label, [], advice) from None
    except Exception as error:  # truncated zip archives, bad headers, EOF
        raise CnnlabError(f"{label} is truncated or corrupted ({first_line(error)})") from None


def unsafe_globals(data: bytes) -> list[str]:
    """The callables the pickle of a torch.save archive names that torch's weights-only loader does not allow
    (e.g. ["posix.system"]), read statically from its opcodes: nothing is unpickled. [] for bytes that are no
    readable archive (torch.load then reports them as damaged) and for plain pickles and torch's legacy non-zip
    format, whose refusal comes from torch.load's weights-only unpickler (an UnpicklingError) instead."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data)))
    except Exception:  # not a zip archive, no data.pkl, a truncated pickle
        return []


def read_bytes(path: Path, label: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CnnlabError(f"{label} does not exist") from None
    except OSError as error:
        raise CnnlabError(f"cannot read {label}: {error.strerror or error}") from None
