"""Receptive fields and depth: the closed formula for a chain of layers, and a tracer that follows one forward pass
through any network (residual adds, concats), with `receptive_field`, `main_path_depth` and the empirical
`effective_receptive_field` on top.

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
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnlab.errors import CnnlabError
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, model_info


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
            self.height + span_h * self.jump_h,
            self.width + span_w * self.jump_w,
            self.jump_h * stride[0],
            self.jump_w * stride[1],
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
    _aten.convolution,
    _aten.max_pool2d_with_indices,
    _aten.max_pool2d,
    _aten.avg_pool2d,
    _aten._adaptive_avg_pool2d,
    _aten.adaptive_max_pool2d,
)


def _is_spatial(func, args: tuple, output: torch.Tensor) -> bool:
    packet = func.overloadpacket
    if packet is _aten.mean:  # a global average pool written as x.mean((2, 3), keepdim=True)
        dims = {d % 4 for d in _arg(args, 1, [])} if args[0].dim() == 4 else set()
        return dims == {2, 3} and output.dim() == 4
    return packet in _SPATIAL_OPS


class ForwardTracer(TorchDispatchMode):
    """Follows the image's activations through every aten op of one forward pass, with a receptive field per tensor.

    Each activation carries the field of one of its pixels. A conv or pool grows it; an op that merges several
    activations (a residual add, an Inception or DenseNet concat) takes the widest of its inputs, per axis, so a
    tensor's field is the one on its widest path (Araujo et al. 2019). Functional convs and pools count too.
    A [N, C, 1, 1] gate broadcast over a larger map (squeeze-and-excitation) adds no spatial path of its own and
    is left out of the merge: strictly, after such a gate every unit depends on the whole image.
    `field_of(t)` is None for a tensor off the image's path, or once an op the tracer does not model (a
    transposed conv, an uneven adaptive pool, upsampling) has made the field undefined. `is_chain` stays True
    while no op combines two different activations.
    """

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        # Weak references by id: an id leaves the map when its tensor dies, before it can be reused.
        self._activations: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        self._fields: dict[int, Field | None] = {}  # read only while the id is in _activations
        self._depths: dict[int, int] = {}
        self._remember(image, Field(), 0)
        self.is_chain = True

    def _remember(self, tensor: torch.Tensor, field: Field | None, depth: int) -> None:
        self._activations[id(tensor)] = tensor
        self._fields[id(tensor)] = field
        self._depths[id(tensor)] = depth

    def field_of(self, tensor: torch.Tensor) -> Field | None:
        return self._fields.get(id(tensor)) if id(tensor) in self._activations else None

    def depth_of(self, tensor: torch.Tensor) -> int | None:
        """Weight layers (convolutions and matrix products with a weight) on the longest path to `tensor`."""
        return self._depths.get(id(tensor)) if id(tensor) in self._activations else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and id(t) in self._activations]
        if not inputs:
            return output  # parameter or constant arithmetic, not the image's path
        if len({id(t) for t in inputs}) > 1:
            self.is_chain = False
        outputs = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]
        if outputs:
            field = self._next_field(func, args, inputs, outputs[0])
            paths = _spatial_paths(inputs, outputs[0])
            depth = max(self._depths[id(t)] for t in paths) + (func.overloadpacket in _WEIGHT_OPS)
            for tensor in outputs:
                self._remember(tensor, field, depth)
        return output

    def _next_field(self, func, args: tuple, inputs: list[torch.Tensor], result: torch.Tensor) -> Field | None:
        fields = [self.field_of(t) for t in _spatial_paths(inputs, result)]
        if any(field is None for field in fields):
            return None
        field = _widest(fields)
        if func.overloadpacket in _UNMODELLED_OPS:
            return None
        if result.dim() == 4 and _is_spatial(func, args, result):
            return _grow_by_op(field, func, args)
        return field  # pointwise, normalisation, views, permutes, linear layers on channels: the field is unchanged


# A conv, or a linear layer's matrix product (a parameter times the activation): one weight layer each.
_WEIGHT_OPS = (_aten.convolution, _aten.addmm, _aten.mm, _aten.bmm, _aten.baddbmm)

# Ops that move pixels in a way a (kernel, stride) pair does not describe.
_UNMODELLED_OPS = tuple(
    getattr(_aten, name)
    for name in (
        "upsample_nearest2d",
        "upsample_bilinear2d",
        "upsample_bicubic2d",
        "_upsample_nearest_exact2d",
        "_upsample_bilinear2d_aa",
        "grid_sampler_2d",
        "pixel_shuffle",
        "pixel_unshuffle",
        "roll",
    )
    if hasattr(_aten, name)
)


def _spatial_paths(inputs: list[torch.Tensor], result: torch.Tensor) -> list[torch.Tensor]:
    """The inputs whose pixels reach the result's pixels: all of them, less [N, C, 1, 1] gates broadcast onto a
    larger map (squeeze-and-excitation scales channels; it has no spatial extent of its own on the main path)."""
    if result.dim() != 4 or len(inputs) < 2 or tuple(result.shape[-2:]) == (1, 1):
        return inputs
    kept = [t for t in inputs if not (t.dim() == 4 and tuple(t.shape[-2:]) == (1, 1))]
    return kept or inputs


def _widest(fields: list[Field]) -> Field:
    if len(fields) == 1:
        return fields[0]
    return Field(
        max(f.height for f in fields),
        max(f.width for f in fields),
        max(f.jump_h for f in fields),
        max(f.jump_w for f in fields),
    )


# ------------------------------------------------------------------------------------------- whole networks


def receptive_field(network, input_size: int | tuple[int, int, int] | None = None) -> int:
    """Theoretical receptive field, in input pixels per side.

    `network` is a chain of (kernel, stride) pairs (two 3x3 convs -> 5, three -> 7), or a model or registered
    model name: then the field of one pixel of `forward_features`' output on the widest path through its
    residual and multi-branch blocks (alexnet 195, vgg16 212, torchvision-layout resnet50 427), traced through
    one forward pass at `input_size` (a side, or (C, H, W); default the model's own input). The field may be
    larger than the input: its edge then lies in the zero padding.
    """
    if isinstance(network, (list, tuple)):
        return _chain_field(network)
    model, shape, label = _resolve(network, input_size)
    field = trace_features(model, shape, label)
    if field is None:
        raise CnnlabError(
            f"{label}: the output of forward_features has no single receptive field "
            "(an op such as upsampling or an uneven adaptive pool is on its path)"
        )
    return field.size


def _chain_field(layers) -> int:
    field = Field()
    for kernel, stride in layers:
        if kernel < 1 or stride < 1:
            raise CnnlabError(f"kernel and stride must be at least 1, got (kernel={kernel}, stride={stride})")
        field = field.grow((kernel, kernel), (stride, stride))
    return field.size


def _resolve(network, input_size) -> tuple[nn.Module, tuple[int, int, int], str]:
    """The model to trace, its input (C, H, W) and its name for messages. A registered name is built on the meta
    device (shapes only: no memory, no init) for the input's channels and side."""
    if isinstance(network, str):
        default = model_info(network).input_size  # an unknown name fails here, listing the closest ones
    elif isinstance(network, nn.Module):
        default = (getattr(network, "in_chans", 3), 224, 224)
    else:
        raise CnnlabError(f"expected a model, a model name or (kernel, stride) pairs, got {type(network).__name__}")
    if isinstance(input_size, (tuple, list)):
        if len(input_size) != 3:
            raise CnnlabError(f"input_size is a side or (C, H, W), got {tuple(input_size)}")
        shape = tuple(int(v) for v in input_size)
    else:
        side = int(input_size) if input_size is not None else None
        shape = (default[0], side or default[1], side or default[2])
    if isinstance(network, nn.Module):
        return network, shape, getattr(network, "model_name", None) or type(network).__name__
    with on_meta():
        return create_model(network, in_chans=shape[0], input_size=shape[1]), shape, network


def trace_features(model: nn.Module, input_shape: tuple[int, int, int], label: str = "") -> Field | None:
    """The Field of `forward_features`' output (of the whole forward for a model without one), eval mode."""
    return trace_network(model, input_shape, label)[0]


def trace_network(model: nn.Module, input_shape: tuple[int, int, int], label: str = "") -> tuple[Field | None, int]:
    """One eval-mode forward pass: the Field of `forward_features`' output and the depth of the logits (weight
    layers on the longest path, see `main_path_depth`). A model without `forward_features` is one chain."""
    from cnnlab.measure.counting import blank_image, eval_mode, input_errors

    image = blank_image(model, input_shape)
    tracer = ForwardTracer(image)
    with input_errors(model, input_shape, label or type(model).__name__):
        with eval_mode(model), torch.no_grad(), tracer:
            if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
                features = model.forward_features(image)
                output = model.forward_head(features)
            else:
                features = output = model(image)
    logits = next(t for t in tree_leaves(output) if isinstance(t, torch.Tensor))
    return tracer.field_of(features), tracer.depth_of(logits)


def main_path_depth(network, input_size: int | tuple[int, int, int] | None = None) -> int:
    """Depth as the papers count it: weight layers (convolutions and linear layers, each call once) on the longest
    path from the image to the logits. Shortcut projections are on a shorter path and a squeeze-and-excitation
    gate's 1x1 convs on a side path, so neither counts; for a multi-branch module the deepest branch counts.
    lenet5 5, alexnet 8, vgg16 16, googlenet 22, resnet18 18, resnet50 50, densenet121 121."""
    model, shape, label = _resolve(network, input_size)
    return trace_network(model, shape, label)[1]


# ------------------------------------------------------------------------------------------- effective field


def effective_receptive_field(
    network,
    input_size: int | tuple[int, int, int] | None = None,
    *,
    samples: int = 4,
    mass: float = 0.95,
    seed: int = 0,
) -> tuple[int, torch.Tensor]:
    """The empirical, effective receptive field of `forward_features`' centre pixel (Luo et al. 2016).

    For `samples` random normal inputs (and, for a registered name, as many random initialisations: seed,
    seed + 1, ...; a model you pass keeps its weights), back-propagate from the centre pixel of the output map
    (summed over its channels) to the input, in eval mode, and average |gradient| summed over input channels.
    Returns (extent, heatmap): the heat map is [H, W] at input resolution, scaled to a maximum of 1; the extent is
    the side of the smallest square, anywhere in the input, that holds `mass` (default 95%) of the gradient
    magnitude. Pixels outside the theoretical field get exactly zero gradient, so extent <= receptive_field.
    """
    if samples < 1 or not 0 < mass <= 1:
        raise CnnlabError(f"samples must be at least 1 and mass in (0, 1], got samples={samples}, mass={mass}")
    total = None
    for index in range(samples):
        generator = torch.Generator().manual_seed(seed + index)
        model, shape, label = _resolve_real(network, input_size, seed + index)
        gradient = _centre_gradient(model, torch.randn(1, *shape, generator=generator), label)
        total = gradient if total is None else total + gradient
    heatmap = total / samples
    return _smallest_square(heatmap, mass), heatmap / heatmap.max().clamp_min(1e-30)


def _resolve_real(network, input_size, seed: int) -> tuple[nn.Module, tuple[int, int, int], str]:
    """Like _resolve, but with real weights: a name is built afresh from the seed."""
    if not isinstance(network, str):
        return _resolve(network, input_size)
    _, shape, label = _resolve(network, input_size)
    torch.manual_seed(seed)
    return create_model(network, in_chans=shape[0], input_size=shape[1]), shape, label


def _centre_gradient(model: nn.Module, image: torch.Tensor, label: str) -> torch.Tensor:
    from cnnlab.measure.counting import eval_mode, input_errors

    param = next(model.parameters(), None)
    image = image.to(param.device if param is not None else "cpu").requires_grad_(True)
    forward = getattr(model, "forward_features", model)
    with eval_mode(model), torch.enable_grad():
        with input_errors(model, tuple(image.shape[1:]), label):
            output = forward(image)
        if output.dim() != 4:
            raise CnnlabError(f"{label}: forward_features gives shape {list(output.shape)}, not a [B, C, H, W] map")
        output[0, :, output.shape[2] // 2, output.shape[3] // 2].sum().backward()
    return image.grad[0].abs().sum(dim=0).detach().float().cpu()  # [H, W]


def _smallest_square(heatmap: torch.Tensor, mass: float) -> int:
    """Side of the smallest square window (any position) whose sum reaches `mass` of the total."""
    height, width = heatmap.shape
    total = heatmap.sum().item()
    if total <= 0:
        raise CnnlabError("the output's centre pixel has zero gradient for every input pixel (a dead network?)")
    table = torch.zeros(height + 1, width + 1, dtype=torch.float64)  # summed-area table
    table[1:, 1:] = heatmap.double().cumsum(0).cumsum(1)
    for side in range(1, max(height, width) + 1):
        sh, sw = min(side, height), min(side, width)
        windows = table[sh:, sw:] - table[:-sh, sw:] - table[sh:, :-sw] + table[:-sh, :-sw]
        if windows.max().item() >= mass * total * (1 - 1e-9):
            return side
    return max(height, width)
