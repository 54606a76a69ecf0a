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


# The layers whose kernel must fit their (padded) input, with their number of spatial dimensions. A forward
# pre-hook compares each call's input with the layer's geometry, so a failed pass is worded from the shapes the
# layers saw, never from the text of torch's message (which changes between layers and releases).
_KERNEL_LAYERS: dict[type[nn.Module], int] = {
    nn.Conv1d: 1,
    nn.Conv2d: 2,
    nn.Conv3d: 3,
    nn.MaxPool1d: 1,
    nn.MaxPool2d: 2,
    nn.MaxPool3d: 3,
    nn.AvgPool1d: 1,
    nn.AvgPool2d: 2,
    nn.AvgPool3d: 3,
    nn.LPPool1d: 1,
    nn.LPPool2d: 2,
}


def _per_dim(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _kernel_dims(module: nn.Module) -> int | None:
    return next((dims for kind, dims in _KERNEL_LAYERS.items() if isinstance(module, kind)), None)


def kernel_overhangs(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether conv or pooling layer `module` gives an empty output for input `x`: some spatial side, padded, is
    smaller than the dilated kernel (for a ceil_mode pool, by torch's own output-size rule). False for any other
    module, for a conv with padding="same", and for an input with too few dimensions to tell."""
    dims = _kernel_dims(module)
    padding = getattr(module, "padding", 0)
    if dims is None or x.dim() <= dims or padding == "same":
        return False
    kernel = _per_dim(module.kernel_size, dims)
    stride = _per_dim(getattr(module, "stride", None) or kernel, dims)
    padding = _per_dim(0 if padding == "valid" else padding, dims)
    dilation = _per_dim(getattr(module, "dilation", 1), dims)
    ceil = getattr(module, "ceil_mode", False)
    for size, k, s, p, d in zip(x.shape[-dims:], kernel, stride, padding, dilation, strict=True):
        out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1  # floor, as torch rounds
        if ceil and (out - 1) * s >= size + p:  # a ceil_mode window must start inside the input or its left pad
            out -= 1
        if out < 1:
            return True
    return False


@contextmanager
def input_errors(model: nn.Module, input_shape: tuple[int, ...], label: str) -> Iterator[None]:
    """Run a forward pass of `model` inside: a RuntimeError or ValueError it raises becomes `input_error`'s
    one-line CnnlabError, "too small" when some conv or pooling layer got a map smaller than its kernel."""
    overhanging: list[nn.Module] = []

    def check(module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor) and kernel_overhangs(module, args[0]):
            overhanging.append(module)

    handles = [module.register_forward_pre_hook(check) for module in model.modules() if _kernel_dims(module)]
    try:
        yield
    except (RuntimeError, ValueError) as error:
        raise input_error(tuple(input_shape), label, error, too_small=bool(overhanging)) from error
    finally:
        for handle in handles:
            handle.remove()


def run_forward(model: nn.Module, image: torch.Tensor, label: str) -> torch.Tensor:
    """`model(image)`, with a shape failure turned into a one-line CnnlabError naming the input and the model."""
    with input_errors(model, tuple(image.shape[1:]), label):
        return model(image)


def input_error(input_shape: tuple[int, ...], label: str, error: Exception, too_small: bool) -> CnnlabError:
    """ "input 1x8x8 is too small for lenet5: <torch's first line>" when `too_small` (a kernel outgrew the feature
    map, see `input_errors`), else "input ... does not fit lenet5: ..." """
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    problem = "is too small for" if too_small else "does not fit"
    return CnnlabError(f"input {shape_text(input_shape)} {problem} {label}: {first_line}")
