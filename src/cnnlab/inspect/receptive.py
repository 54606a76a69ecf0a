"""Receptive fields: the closed formula for a chain of layers, and a tracer that follows one forward pass.

For layers i = 1..n with kernel k_i and stride s_i, an output pixel sees

    r = 1 + sum_i (k_i - 1) * prod_{j < i} s_j

input pixels per side: each layer widens the field by k_i - 1 steps of the input grid spacing ("jump") it works
on, and its stride multiplies that spacing for the layers after it. A dilated kernel spans d * (k - 1) + 1 pixels.
Padding moves the field but does not change its size.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnlab.errors import CnnlabError


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field (pixels per side) of a chain of (kernel, stride) layers: two 3x3 convs -> 5, three -> 7."""
    field = Field()
    for kernel, stride in layers:
        if kernel < 1 or stride < 1:
            raise CnnlabError(f"kernel and stride must be at least 1, got (kernel={kernel}, stride={stride})")
        field = field.grow((kernel, kernel), (stride, stride))
    return field.size


@dataclass(frozen=True)
class Field:
    """Receptive field of one activation pixel per axis (height, width) and the input-pixel spacing of its grid."""

    height: int = 1
    width: int = 1
    jump_h: int = 1
    jump_w: int = 1

    @property
    def size(self) -> int:
        # One number per layer: the larger side (they are equal unless a kernel is non-square, e.g. 1x7).
        return max(self.height, self.width)

    def grow(self, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> Field:
        span_h, span_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return Field(
            self.height + span_h * self.jump_h, self.width + span_w * self.jump_w,
            self.jump_h * stride[0], self.jump_w * stride[1],
        )


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _arg(args: tuple, index: int, default):
    """aten ops leave trailing defaults out; an empty list means "the default" too (a pool's stride = kernel)."""
    value = args[index] if len(args) > index else default
    return default if isinstance(value, (list, tuple)) and len(value) == 0 else value


def _adaptive_window(in_size: int, out_size: int) -> tuple[int, int] | None:
    """(kernel, stride) of an adaptive pool along one axis when every window has the same size, else None."""
    if out_size == 1:
        return in_size, in_size
    if in_size % out_size == 0:
        return in_size // out_size, in_size // out_size
    return None  # uneven windows: no single receptive field


_aten = torch.ops.aten


def _grow_by_op(field: Field, func, args: tuple) -> Field | None:
    """The field after a spatial aten op; None where it stops being one (transposed conv, uneven adaptive pool)."""
    packet = func.overloadpacket
    if packet is _aten.convolution:
        # convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
        if len(args) > 6 and args[6]:
            return None
        kernel = tuple(args[1].shape[-2:])
        return field.grow(kernel, _pair(_arg(args, 3, 1)), _pair(_arg(args, 5, 1)))
    if packet in (_aten.max_pool2d_with_indices, _aten.max_pool2d):
        # max_pool2d(input, kernel_size, stride=kernel_size, padding, dilation, ceil_mode)
        kernel = _pair(args[1])
        return field.grow(kernel, _pair(_arg(args, 2, kernel)), _pair(_arg(args, 4, 1)))
    if packet is _aten.avg_pool2d:
        kernel = _pair(args[1])
        return field.grow(kernel, _pair(_arg(args, 2, kernel)))
    # adaptive pools, and x.mean((2, 3), keepdim=True) as a functional global pool
    in_h, in_w = args[0].shape[-2:]
    out_h, out_w = _pair(args[1]) if packet is not _aten.mean else (1, 1)
    window_h, window_w = _adaptive_window(in_h, out_h), _adaptive_window(in_w, out_w)
    if window_h is None or window_w is None:
        return None
    return field.grow((window_h[0], window_w[0]), (window_h[1], window_w[1]))


_SPATIAL_OPS = (
    _aten.convolution, _aten.max_pool2d_with_indices, _aten.max_pool2d, _aten.avg_pool2d,
    _aten._adaptive_avg_pool2d, _aten.adaptive_max_pool2d,
)


def _is_spatial(func, args: tuple, output: torch.Tensor) -> bool:
    packet = func.overloadpacket
    if packet is _aten.mean:  # a global average pool written as x.mean((2, 3), keepdim=True)
        dims = {d % 4 for d in _arg(args, 1, [])} if args[0].dim() == 4 else set()
        return dims == {2, 3} and output.dim() == 4
    return packet in _SPATIAL_OPS


class ForwardTracer(TorchDispatchMode):
    """Follows the image's activations through every aten op of one forward pass.

    `is_chain` stays True while no op combines two different activations (a residual add, an Inception concat);
    `field` is the receptive field of the newest activation, None once it stops being a feature map (after a
    flatten, a linear layer, or a spatial op the tracer does not model). Functional convs and pools count too.
    """

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        # Weak references by id: an id leaves the map when its tensor dies, before it can be reused.
        self._activations: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        self._activations[id(image)] = image
        self.is_chain = True
        self.field: Field | None = Field()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and id(t) in self._activations]
        if not inputs:
            return output  # parameter or constant arithmetic, not the image's path
        if len({id(t) for t in inputs}) > 1:
            self.is_chain = False
        outputs = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]
        for tensor in outputs:
            self._activations[id(tensor)] = tensor
        self._update_field(func, args, inputs[0], outputs[0] if outputs else None)
        return output

    def _update_field(self, func, args: tuple, source: torch.Tensor, result: torch.Tensor | None) -> None:
        if self.field is None or result is None:
            return
        if result.dim() != 4:
            self.field = None  # flattened: a vector has no spatial field
        elif _is_spatial(func, args, result):
            self.field = _grow_by_op(self.field, func, args)
        elif source.dim() == 4 and source.shape[-2:] != result.shape[-2:]:
            self.field = None  # some other op resized the map (upsampling, cropping): not modelled
