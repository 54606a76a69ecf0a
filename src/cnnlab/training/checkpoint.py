"""Crash-safe files: every write goes to a temp file in the same directory, is flushed and fsynced, then renamed
over the target with `os.replace`, so a reader sees the old file or the new one, never half of one.

Model weights are safetensors (no code can ride along). Training state (optimizer, scheduler, RNG, counters,
metrics so far) is plain tensors and numbers, read back with `torch.load(weights_only=True)`.

A run's checkpoints live in RUN_DIR/checkpoints as pairs `step-00000123.safetensors` + `step-00000123.state.pt`;
`latest` names the newest complete pair and is itself replaced atomically after both files are on disk.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import safetensors.torch
import torch
from torch import nn

from cnnlab.errors import CnnlabError


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CnnlabError(f"could not write {path}: {error.strerror or error}") from error
    # Persist the rename itself; without this a power cut can forget it.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise CnnlabError(f"{path} does not exist") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CnnlabError(f"{path} is not valid JSON: {error}") from error


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous CPU tensors that share no storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    data = safetensors.torch.save(state_dict_tensors(model), metadata=metadata)
    atomic_write(path, lambda handle: handle.write(data))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a state dict; a missing, truncated or corrupted file is a CnnlabError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} does not exist")
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as error:  # safetensors raises several types for damaged files
        raise CnnlabError(f"{path} is not a valid safetensors file (truncated or corrupted?): {error}") from error


def load_model_weights(model: nn.Module, path: Path) -> None:
    state = read_weights(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CnnlabError(f"{path} does not match the model: {first_line}") from error


def save_state(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def read_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CnnlabError(f"checkpoint {path} does not exist") from error
    except Exception as error:  # unpickling errors, truncated zip archives
        raise CnnlabError(
            f"{path} is not a valid cnnlab checkpoint (truncated, corrupted, or holds pickled code, which is refused): {error}"
        ) from error


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, state: dict, keep: int) -> Path:
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"step-{step:08d}"
    save_weights(model, folder / f"{stem}.safetensors")
    save_state(folder / f"{stem}.state.pt", state)
    atomic_write(folder / "latest", lambda handle: handle.write(stem.encode()))
    stems = sorted({p.name.split(".")[0] for p in folder.glob("step-*") if not p.name.startswith(".")})
    for old in stems[: max(0, len(stems) - max(1, keep))]:
        for suffix in (".safetensors", ".state.pt"):
            (folder / f"{old}{suffix}").unlink(missing_ok=True)
    return folder / stem


def load_checkpoint(run_dir: Path, model: nn.Module) -> dict:
    """Load the latest checkpoint's weights into `model` and return its training state."""
    folder = Path(run_dir) / "checkpoints"
    latest = folder / "latest"
    if not latest.is_file():
        raise CnnlabError(f"{run_dir} has no checkpoint to resume from (looked for {latest})")
    stem = latest.read_text().strip()
    load_model_weights(model, folder / f"{stem}.safetensors")
    return read_state(folder / f"{stem}.state.pt")
