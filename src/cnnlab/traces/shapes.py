"""`cnnlab trace bottleneck` and `cnnlab trace conv`: shapes, parameters and the sliding window, worked out.

bottleneck: ResNet's 1x1 -> 3x3 -> 1x1 block (`cnnlab.models.blocks.Bottleneck`) against two 3x3 convs at the same
width (`BasicBlock`): each conv's shapes, its parameters by the formula k * k * C_in * C_out and as torch counts
them, and its multiply-accumulates by the formula k * k * C_in * C_out * H_out * W_out and by FlopCounterMode.
conv: the output-size formula with the numbers filled in, then every window of a small seeded integer input,
by NumPy (`cnnlab.scratch.conv2d`) and by nn.Conv2d.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError, OptionValueError
from cnnlab.models.blocks import BasicBlock, Bottleneck
from cnnlab.models.meta import on_meta
from cnnlab.scratch import conv2d, conv_output_size
from cnnlab.traces.common import max_diff, result

MAX_SIDE = 32  # the worked window lists every output pixel: keep the input small enough to read


def _macs(module: nn.Module, input_shape: tuple) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.zeros(1, *input_shape, device="meta"))
    return counter.get_total_flops() // 2


def _block_rows(block: nn.Module, label: str, side: int) -> tuple[list[list], dict[str, int]]:
    """One row per conv of `block` on a [1, C, side, side] map (meta device: shapes only), then its BatchNorm and
    its total; and the totals as numbers."""
    shapes: dict[str, tuple] = {}
    convs = [(n, m) for n, m in block.named_modules() if isinstance(m, nn.Conv2d)]

    def record(module, args, output, name):
        shapes[name] = (tuple(args[0].shape[1:]), tuple(output.shape[1:]))

    hooks = [m.register_forward_hook(lambda m, a, o, n=n: record(m, a, o, n)) for n, m in convs]
    with torch.no_grad():
        block.eval()(torch.zeros(1, block.conv1.in_channels, side, side, device="meta"))
    for hook in hooks:
        hook.remove()
    rows = []
    for name, conv in convs:
        (c_in, h_in, w_in), (c_out, h, w) = shapes[name]
        k = conv.kernel_size[0]
        params = k * k * c_in * c_out // conv.groups
        rows.append(
            [
                label,
                name,
                f"{k}x{k}",
                f"{c_in}x{h_in}x{w_in} -> {c_out}x{h}x{w}",
                f"{k}*{k}*{c_in}*{c_out}",
                params,
                sum(p.numel() for p in conv.parameters()),
                params * h * w,
                _macs(conv, shapes[name][0]),
            ]
        )
    bn = sum(p.numel() for m in block.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    total = {
        "conv_params": sum(r[5] for r in rows),
        "macs": sum(r[7] for r in rows),
        "bn": bn,
        "params": sum(p.numel() for p in block.parameters()),
    }
    rows.append([label, "BatchNorm (gamma, beta)", "", "", "2 * channels per BN", bn, bn, None, None])
    rows.append(
        [
            label,
            "block total",
            "",
            "",
            "convs + BN",
            total["conv_params"] + bn,
            total["params"],
            total["macs"],
            sum(r[8] for r in rows[:-1]),
        ]
    )
    return rows, total


def bottleneck_trace(channels: int = 256, size: int = 56) -> dict:
    if not 4 <= channels <= 4096 or channels % 4:
        raise OptionValueError("channels", f"must be a multiple of 4 from 4 to 4096, got {channels}")
    if not 1 <= size <= 512:
        raise OptionValueError("size", f"must be 1 to 512, got {size}")
    with on_meta():
        bottleneck, basic = Bottleneck(channels, channels), BasicBlock(channels, channels)
    rows_b, b = _block_rows(bottleneck, "bottleneck", size)
    rows_p, p = _block_rows(basic, "two 3x3", size)
    notes = [
        f"The bottleneck's 3x3 runs on {channels // 4} channels, a quarter of {channels}: its convs hold "
        f"{b['conv_params']:,} weights against {p['conv_params']:,} for two {channels}-wide 3x3 convs "
        f"({p['conv_params'] / b['conv_params']:.1f}x), and {b['macs']:,} against {p['macs']:,} MACs at {size}x{size} "
        f"({p['macs'] / b['macs']:.1f}x).",
        f"Whole blocks with BatchNorm: {b['params']:,} against {p['params']:,} parameters "
        "(docs/errata.md C13 for 256).",
        "formula columns by hand; 'torch' columns count nn.Conv2d parameters and FlopCounterMode FLOPs / 2.",
    ]
    data = {
        "bottleneck_params": b["params"],
        "two_3x3_params": p["params"],
        "bottleneck_macs": b["macs"],
        "two_3x3_macs": p["macs"],
    }
    columns = [
        "block",
        "layer",
        "kernel",
        "shape",
        "params formula",
        "params (formula)",
        "params (torch)",
        "MACs (formula)",
        "MACs (torch)",
    ]
    return result(
        "bottleneck",
        f"Bottleneck vs two 3x3 convs at {channels} channels, {size}x{size}",
        columns,
        rows_b + rows_p,
        notes,
        data,
    )


def parse_side(text: str) -> tuple[int, int]:
    """ "5x5" or "5" -> (5, 5); "5x7" -> (5, 7)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
    if not match:
        raise OptionValueError("input", f"takes HxW or a side, e.g. 5x5 or 7, got '{text}'")
    height, width = int(match.group(1)), int(match.group(2) or match.group(1))
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise OptionValueError("input", f"sides must be 1 to {MAX_SIDE} (every window is listed), got {height}x{width}")
    return height, width


def _size_text(side: int, kernel: int, stride: int, padding: int) -> str:
    inner = side + 2 * padding - kernel
    return (
        f"floor(({side} + 2*{padding} - {kernel}) / {stride}) + 1 = floor({inner}/{stride}) + 1 = {inner // stride + 1}"
    )


def conv_trace(input: str = "5x5", kernel: int = 3, stride: int = 1, padding: int = 0, seed: int = 0) -> dict:  # noqa: A002
    height, width = parse_side(input)
    # Capped at the input's side: a larger kernel, stride or padding shows nothing new, and a huge padding would
    # allocate the padded image (a request for padding 10^6 asked for terabytes).
    for option, value, low in (("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if not low <= value <= MAX_SIDE:
            raise OptionValueError(option, f"must be {low} to {MAX_SIDE}, got {value}")
    out_h, out_w = conv_output_size(height, kernel, stride, padding), conv_output_size(width, kernel, stride, padding)
    if out_h < 1 or out_w < 1:
        raise CnnlabError(f"a {kernel}x{kernel} kernel does not fit a {height}x{width} input padded by {padding}")
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 10, size=(height, width)).astype(np.float32)  # small integers: sums checkable by hand
    weights = rng.integers(-1, 2, size=(kernel, kernel)).astype(np.float32)
    scratch = conv2d(image[None, None], weights[None, None], stride=stride, padding=padding)[0, 0]
    layer = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights)[None, None])
        reference = layer(torch.from_numpy(image)[None, None])[0, 0]
    torch_size = list(reference.shape)
    formula = f"H: {_size_text(height, kernel, stride, padding)}; W: {_size_text(width, kernel, stride, padding)}"
    rows = [["output size", "", "", formula, [out_h, out_w], torch_size, max_diff([out_h, out_w], torch_size)]]
    padded = np.pad(image, padding)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride, j * stride
            window = padded[top : top + kernel, left : left + kernel]
            pairs = zip(window.flatten(), weights.flatten())
            terms = " + ".join(f"{a:g}*{b:g}" if b >= 0 else f"{a:g}*({b:g})" for a, b in pairs)
            rows.append(
                [
                    f"({i}, {j})",
                    f"rows {top}-{top + kernel - 1}, cols {left}-{left + kernel - 1}",
                    window,
                    terms,
                    scratch[i, j],
                    reference[i, j],
                    max_diff(scratch[i, j], reference[i, j]),
                ]
            )
    notes = [
        "H_out = floor((H + 2p - k) / s) + 1 per side; when s does not divide H + 2p - k the last pixels are never "
        "a window's first row, and torch floors.",
        f"input: seeded integers 0-9 (seed {seed}); kernel: integers -1..1; window rows/cols index the "
        f"{'zero-padded ' if padding else ''}input. scratch: cnnlab.scratch.conv2d (NumPy); torch.nn: nn.Conv2d.",
    ]
    data = {"input": image, "kernel": weights, "padded": padded, "output": scratch}
    columns = ["output pixel", "window", "window values", "sum of products", "scratch", "torch.nn", "max |diff|"]
    title = f"Conv {kernel}x{kernel}, stride {stride}, padding {padding} on a {height}x{width} input -> {out_h}x{out_w}"
    return result("conv", title, columns, rows, notes, data)
