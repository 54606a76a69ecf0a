"""Whether a run's code may run: loading a network from a run's copy of its source executes that code.

A run's code runs without asking when this user trained it on this machine: the trainer records the source's
SHA-256 in cnnlab's state directory (`$CNNLAB_STATE_DIR`, else `$XDG_STATE_HOME/cnnlab`, else
`~/.local/state/cnnlab`). Any other run's code runs only with `--trust-code` (`trust_code=True`), as Hugging Face's
`trust_remote_code`; without it, `UntrustedCode` says why and how in one line.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write

TRUSTED_FILE = "trusted-code.json"
# --trust-code for one command: set around it (`trusting`), so that every run it loads, however deep the call that
# rebuilds the model, sees the user's answer without each layer passing a flag down.
_GRANTED: contextvars.ContextVar[bool] = contextvars.ContextVar("trust_code", default=False)


class UntrustedCode(CnnlabError):
    """A run holds code that this user did not train here; `sha256` is its source's hash."""

    def __init__(self, where: str, sha256: str) -> None:
        self.where, self.sha256 = where, sha256
        super().__init__(
            f"{where} holds a network's source code (sha256 {sha256[:12]}…) that was not trained by you on this "
            "machine, and loading it would run that code; read the copy in the run folder, then pass --trust-code "
            "(trust_code=True in Python) to run it"
        )


def state_dir() -> Path:
    if os.environ.get("CNNLAB_STATE_DIR"):
        return Path(os.environ["CNNLAB_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cnnlab"


def _trusted() -> set[str]:
    try:
        return set(json.loads((state_dir() / TRUSTED_FILE).read_text()).get("sha256", []))
    except (OSError, ValueError, AttributeError):  # no file yet, or a damaged one: trust nothing
        return set()


def remember(sha256: str) -> None:
    """Record code this user ran to train: their own runs load later without --trust-code."""
    known = _trusted()
    if sha256 in known:
        return
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"sha256": sorted(known | {sha256})}, indent=1).encode()
    atomic_write(folder / TRUSTED_FILE, lambda handle: handle.write(text))


def is_trusted(sha256: str) -> bool:
    return sha256 in _trusted()


@contextmanager
def trusting(trust_code: bool = True) -> Iterator[None]:
    """Within the block, runs' code may run (`trust_code` False changes nothing): --trust-code, trust_code=True."""
    token = _GRANTED.set(bool(trust_code) or _GRANTED.get())
    try:
        yield
    finally:
        _GRANTED.reset(token)


def require_trust(where: str, sha256: str, trust_code: bool = False) -> None:
    """Return if the code may run; UntrustedCode otherwise."""
    if not (trust_code or _GRANTED.get() or is_trusted(sha256)):
        raise UntrustedCode(where, sha256)
