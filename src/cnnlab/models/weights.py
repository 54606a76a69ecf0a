"""Load a torchvision-style checkpoint from a local file into a cnnlab model.

    model = create_model("resnet18", weights="resnet18-f37072fd.pth")        # calls load_weights
    model = create_model("resnet18", in_chans=1, num_classes=10, weights=...)  # adapted stem, fresh head

`.safetensors` files are read with safetensors; anything else with `torch.load(weights_only=True)`, which
refuses pickles that would run code on load (there is deliberately no fallback to a full unpickle).
The whole file is read and adapted in memory first and only then copied in with `strict=True`, so a file
that does not fit leaves the model untouched.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.errors import CnnlabError, HeadMismatchWarning
from cnnlab.safeload import load_weights_only, read_bytes

StateDict = dict[str, torch.Tensor]

_SHOWN_KEYS = 5  # how many offending keys an error message lists


def _unreadable(path: Path, error: Exception) -> CnnlabError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]  # messages must stay on one line
    return CnnlabError(f"weights file {path} is truncated or corrupted ({reason})")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """The tensors stored in `path`, unwrapped from a {"state_dict": ...} or {"model": ...} container."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} does not exist")
    label = f"weights file {path}"
    if path.suffix == ".safetensors":
        try:
            loaded = load_file(str(path), device="cpu")
        except Exception as error:  # header and length errors all mean an unreadable file
            raise _unreadable(path, error) from None
    else:
        loaded = load_weights_only(
            read_bytes(path, label),
            label,
            "convert it to safetensors in a trusted environment (safetensors.torch.save_file(state_dict, ...))",
        )

    for container_key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(container_key), dict):
            loaded = loaded[container_key]
            break
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise CnnlabError(f"weights file {path} does not hold a state dict of named tensors")
    return dict(loaded)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-conv weight [O, C, k, k] trained on C channels to `in_chans` channels.

    One channel: sum over C, so a grey image gives what its C-fold replica gave. More: repeat the C filters
    cyclically and scale by C/in_chans, so an input made of in_chans/C copies of a C-channel image gives the
    same activations as that image did.
    """
    trained_chans = weight.shape[1]
    if in_chans == 1:
        return weight.float().sum(dim=1, keepdim=True).to(weight.dtype)
    repeats = -(-in_chans // trained_chans)  # ceil division
    repeated = weight.float().repeat(1, repeats, 1, 1)[:, :in_chans]
    return (repeated * (trained_chans / in_chans)).to(weight.dtype)


def _adapt_first_conv(model: nn.Module, state_dict: StateDict) -> None:
    """Rewrite, in place, the first conv whose checkpoint weight has another in-channel count than ours."""
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(module, nn.Conv2d) or key not in state_dict:
            continue
        stored, ours = state_dict[key], module.weight
        if stored.ndim == 4 and stored.shape[1] != ours.shape[1]:
            takes_image = ours.shape[1] == getattr(model, "in_chans", ours.shape[1])
            if takes_image and stored.shape[0] == ours.shape[0] and stored.shape[2:] == ours.shape[2:]:
                state_dict[key] = adapt_input_conv(stored, ours.shape[1])
            return  # only the stem sees the image; a later mismatch is a real one, reported by the caller


def _drop_mismatched_head(model: nn.Module, state_dict: StateDict, path: Path) -> HeadMismatchWarning | None:
    """Keep the model's fresh head when the checkpoint's has another number of classes; returns the warning to
    give once the rest of the file is known to fit (None when the heads agree)."""
    head_path = getattr(model, "classifier_path", None)
    if not head_path:
        return None
    ours = model.state_dict()
    head_keys = [f"{head_path}.{param}" for param in ("weight", "bias") if f"{head_path}.{param}" in ours]
    stored_weight = state_dict.get(f"{head_path}.weight")
    if stored_weight is None or stored_weight.shape[0] == ours[f"{head_path}.weight"].shape[0]:
        return None
    for key in head_keys:
        state_dict[key] = ours[key]
    return HeadMismatchWarning(str(path), stored_weight.shape[0], ours[f"{head_path}.weight"].shape[0], head_keys)


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def load_weights(model: nn.Module, path: str | os.PathLike, *, model_name: str | None = None) -> None:
    """Load the checkpoint at `path` into `model` (all or nothing).

    Keys go through `model.adapt_state_dict`; a first conv trained on another channel count is adapted to
    the model's `in_chans`; a head with another class count is replaced by the model's own (with a
    `HeadMismatchWarning`, which carries both class counts).
    Any other missing, unexpected or mis-shaped tensor raises a CnnlabError naming the file and the keys.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    if hasattr(model, "adapt_state_dict"):
        state_dict = dict(model.adapt_state_dict(state_dict))
    _adapt_first_conv(model, state_dict)
    head_warning = _drop_mismatched_head(model, state_dict, path)

    ours = model.state_dict()
    missing = [key for key in ours if key not in state_dict]
    unexpected = [key for key in state_dict if key not in ours]
    mis_shaped = [
        f"{key} {list(state_dict[key].shape)} vs {list(ours[key].shape)}"
        for key in ours
        if key in state_dict and state_dict[key].shape != ours[key].shape
    ]
    problems = [
        f"{label}: {_listed(keys)}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch (file vs model)", mis_shaped),
        )
        if keys
    ]
    if problems:
        target = model_name or getattr(model, "model_name", None) or type(model).__name__
        raise CnnlabError(f"weights file {path} does not fit {target}: {'; '.join(problems)}")
    if head_warning:  # only for a file that loads: a refused one gets its one-line error alone
        warnings.warn(head_warning, stacklevel=2)
    model.load_state_dict(state_dict, strict=True)
