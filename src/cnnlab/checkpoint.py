"""Weights files and checkpoints, written crash-safely through `cnnlab.files.atomic_write` (temp file, fsync,
`os.replace`), so a reader sees the old file or the new one, never half of one.

Model weights are safetensors (no code can ride along). Training state (optimizer, scheduler, RNG, counters,
metrics so far) is plain tensors and numbers, read back with `torch.load(weights_only=True)`.

A run's checkpoints live in RUN_DIR/checkpoints as pairs `step-00000123.safetensors` + `step-00000123.state.pt`;
`latest` names the newest complete pair and is itself replaced atomically after both files are on disk.

Neither format checks its own contents (a flipped byte in a tensor loads silently), so every safetensors file
cnnlab writes carries the SHA-256 of its tensors in its metadata, and a checkpoint's weights file also carries the
SHA-256 of its state file; reading verifies both, so a damaged file is an error, never a quietly different model.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.safeload import first_line, load_weights_only, read_bytes


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous CPU tensors that share no storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


WEIGHTS_SHA256 = "cnnlab.sha256"  # safetensors metadata key: digest of the file's tensors
STATE_SHA256 = "cnnlab.state_sha256"  # in a checkpoint's weights file: digest of the paired .state.pt


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = state_dict_tensors(model)
    data = safetensors.torch.save(tensors, metadata={**(metadata or {}), WEIGHTS_SHA256: tensors_sha256(tensors)})
    atomic_write(path, lambda handle: handle.write(data))


def read_weights_and_metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and metadata. A missing, truncated or corrupted file (including one whose tensors
    no longer match the checksum cnnlab stored in it) is a one-line CnnlabError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} does not exist")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises several types for damaged files
        raise CnnlabError(
            f"{path} is not a valid safetensors file (truncated or corrupted?): {first_line(error)}"
        ) from None
    if WEIGHTS_SHA256 in metadata and metadata[WEIGHTS_SHA256] != tensors_sha256(tensors):
        raise CnnlabError(f"{path} is corrupted: its tensors no longer match the checksum saved with them")
    return tensors, metadata


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a state dict; a missing, truncated or corrupted file is a CnnlabError naming it."""
    return read_weights_and_metadata(path)[0]


def check_fits(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse, before anything is copied, a state dict with missing, unexpected or mis-shaped tensors
    (`load_state_dict` would copy the matching ones first and leave the model half loaded)."""
    ours = model.state_dict()
    problems = {
        "missing": [k for k in ours if k not in tensors],
        "unexpected": [k for k in tensors if k not in ours],
        "shape mismatch": [k for k in ours if k in tensors and tensors[k].shape != ours[k].shape],
    }
    found = [
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for label, keys in problems.items() if keys
    ]
    if found:
        raise CnnlabError(f"{path} does not match the model ({'; '.join(found)})")


def load_model_weights(model: nn.Module, path: Path) -> dict[str, str]:
    """Load a safetensors file into `model`, all or nothing; returns the file's metadata."""
    tensors, metadata = read_weights_and_metadata(path)
    check_fits(model, tensors, path)
    model.load_state_dict(tensors, strict=True)
    return metadata


def state_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_state(path: Path, state: dict) -> None:
    data = state_bytes(state)
    atomic_write(path, lambda handle: handle.write(data))


def read_state(path: Path, sha256: str | None = None) -> dict:
    """Training state saved by `save_state`, read weights-only (never a full unpickle, no fallback). With `sha256`
    the bytes are checked first, so a damaged file cannot load as different numbers."""
    label = f"checkpoint {path}"
    data = read_bytes(path, label)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CnnlabError(f"{label} is corrupted: it does not match the checksum saved with its weights")
    return load_weights_only(
        data,
        label,
        "cnnlab checkpoints hold only tensors and numbers and model weights are "
        "safetensors, so this file did not come from a cnnlab run",
    )


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, state: dict, keep: int) -> Path:
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"step-{step:08d}"
    data = state_bytes(state)
    save_weights(model, folder / f"{stem}.safetensors", metadata={STATE_SHA256: hashlib.sha256(data).hexdigest()})
    atomic_write(folder / f"{stem}.state.pt", lambda handle: handle.write(data))
    atomic_write(folder / "latest", lambda handle: handle.write(stem.encode()))
    # Keep this step and the keep-1 before it. Later steps are from an abandoned timeline (a run resumed from an
    # earlier checkpoint redoes them), so they go too rather than outrank the new ones.
    stems = sorted({p.name.split(".")[0] for p in folder.glob("step-*")})
    earlier = [s for s in stems if s < stem]
    kept = {stem, *earlier[len(earlier) - (max(1, keep) - 1) :]}
    for old in set(stems) - kept:
        for suffix in (".safetensors", ".state.pt"):
            (folder / f"{old}{suffix}").unlink(missing_ok=True)
    return folder / stem


def load_checkpoint(run_dir: Path, model: nn.Module, before_load: Callable[[dict], None] | None = None) -> dict:
    """Load the latest checkpoint's weights into `model` and return its training state. `before_load(state)` runs
    once both files are verified, before the weights load: a phased run enters the checkpoint's phase there."""
    folder = Path(run_dir) / "checkpoints"
    latest = folder / "latest"
    if not latest.is_file():
        raise CnnlabError(f"{run_dir} has no checkpoint to resume from (looked for {latest})")
    stem = latest.read_text().strip()
    # Read and verify both files before touching the model, so a bad pair leaves it as it was.
    tensors, metadata = read_weights_and_metadata(folder / f"{stem}.safetensors")
    state = read_state(folder / f"{stem}.state.pt", metadata.get(STATE_SHA256))
    if before_load is not None:
        before_load(state)
    check_fits(model, tensors, folder / f"{stem}.safetensors")
    model.load_state_dict(tensors, strict=True)
    # Temp files of a process that died mid-write are garbage now (their targets were never replaced).
    for stale in [*folder.glob(".*.tmp-*"), *Path(run_dir).glob(".*.tmp-*")]:
        stale.unlink(missing_ok=True)
    return state
