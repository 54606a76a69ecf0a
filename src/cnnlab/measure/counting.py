"""Parameter and multiply-accumulate counts, and the one guarded forward pass every inspection tool runs.

MACs come from torch's own `FlopCounterMode`, which counts 2 FLOPs per multiply-accumulate of convolutions and
matrix products (bias adds, activations, pooling and normalisation count 0), so MACs = FLOPs / 2: the convention
of torchvision's published "GFLOPS" (resnet18: 1.81) and of the papers' "mult-adds".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones once); `trainable_only` keeps those with `requires_grad`.

    Reads only shapes, so it works on models built on the meta device.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on ONE image of shape (C, H, W), in eval mode.

    The model's train/eval flags are restored afterwards and, since it runs in eval mode, BatchNorm running
    statistics are left untouched.
    """
    image = blank_image(model, input_shape)
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        run_forward(model, image, type(model).__name__)
    return counter.get_total_flops() // 2


def shape_text(shape: tuple[int, ...]) -> str:
    """(1, 28, 28) -> "1x28x28"."""
    return "x".join(str(size) for size in shape)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode, then give every submodule back its own flag (a frozen BN may be in eval on purpose)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def blank_image(model: nn.Module, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """A zero batch of one image on the model's device, in its floating dtype (float32 for a model without one)."""
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    return torch.zeros(1, *input_shape, device=device, dtype=dtype)


# Substrings of torch's messages that mean a kernel no longer fits the feature map.
_TOO_SMALL_HINTS = ("too small", "can't be greater than", "should be greater", "cannot be smaller", "must be greater")


def run_forward(model: nn.Module, image: torch.Tensor, label: str) -> torch.Tensor:
    """`model(image)`, with a shape failure turned into a one-line CnnlabError naming the input and the model."""
    try:
        return model(image)
    except (RuntimeError, ValueError) as error:
        raise input_error(tuple(image.shape[1:]), label, error) from error


def input_error(input_shape: tuple[int, ...], label: str, error: Exception) -> CnnlabError:
    """ "input 1x8x8 is too small for lenet5: <torch's first line>" (or "does not fit" for other mismatches)."""
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    problem = "is too small for" if any(hint in first_line for hint in _TOO_SMALL_HINTS) else "does not fit"
    return CnnlabError(f"input {shape_text(input_shape)} {problem} {label}: {first_line}")
