"""Text to shapes and networks: `--input 3x224x224` and layer specs such as "conv 64 k7 s2 p3; maxpool k3 s2 p1".

A layer spec is a small design language: a `;`-separated list of layers, enough to write the tutorials' networks
(LeNet-5, the Section-1 CNN, NiN's head, a ResNet) in one line a terminal takes:

    conv OUT kK [sS] [pP] [gG] [dD] [b0]   Conv2d: stride 1, padding 0, groups 1, dilation 1; b0 drops the bias
    maxpool kK [sS] [pP] [dD]              MaxPool2d, stride K unless given
    avgpool kK [sS] [pP]                   AvgPool2d, stride K unless given
    gap                                    global average pool (NiN), then flatten: one number per channel
    relu | tanh | sigmoid | gelu           activations
    bn | lrn [nN] | dropout P              BatchNorm (2d, or 1d after flatten), AlexNet's local response norm
                                           over N channels (5), dropout with probability P
    flatten | fc OUT                       Flatten, Linear
    res(LAYERS)                            a residual block: LAYERS(x) + x, or + a 1x1 projection (with BN when
                                           LAYERS has one) where LAYERS changes the channels or strides
    cat(LAYERS | LAYERS | ...)             parallel branches on one input, concatenated on channels (Inception)
    N*(LAYERS)                             LAYERS N times, each copy with its own weights; (LAYERS) is once,
                                           so "res(...)" -> "(...)" removes a skip and keeps every weight

Example, LeNet-5: "conv 6 k5; tanh; avgpool k2; conv 16 k5; tanh; avgpool k2; flatten; fc 120; tanh; fc 84; tanh;
fc 10". Layers are named by kind and position (conv1, maxpool1, res1.body.conv1, cat1.branch2.conv1, ...), so a
summary reads like a model's. A spec is data: building it runs no code of the user's. See docs/design.md.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CnnlabError, OptionValueError

GRAMMAR = (
    "conv OUT kK [sS] [pP] [gG] [dD] [b0] | maxpool kK [sS] [pP] [dD] | avgpool kK [sS] [pP] | gap | relu | tanh | "
    "sigmoid | gelu | bn | lrn [nN] | dropout P | flatten | fc OUT | res(LAYERS) | cat(LAYERS | LAYERS ...) | "
    "N*(LAYERS)"
)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """ "1x28x28" -> (1, 28, 28). Anything else (a bare "28", "3x224", zeros) is a one-line CnnlabError."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or min(int(size) for size in match.groups()) < 1:
        raise OptionValueError("input", f"must look like 3x224x224 (CxHxW, each at least 1), got '{text}'")
    channels, height, width = (int(size) for size in match.groups())
    return channels, height, width


# Which option letters each layer takes, and which it must have.
_OPTIONS = {"conv": ("kspgdb", "k"), "maxpool": ("kspd", "k"), "avgpool": ("ksp", "k"), "lrn": ("n", "")}
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
_NO_ARGS = ("bn", "flatten", "gap", *_ACTIVATIONS)
_BLOCKS = ("res", "cat")
# The first word of every spec layer (and block), so that a bare "relu" still reads as a spec.
LAYER_KINDS = ("conv", "maxpool", "avgpool", "fc", "lrn", "dropout", *_NO_ARGS, *_BLOCKS)
MAX_REPEATS = 64  # N*(...): deeper than any network the tutorials write, and a cap on what one line can build


class LayerSpecError(CnnlabError):
    """A spec that cannot be built: `layer` is the offending layer as typed (the lab marks it), `problem` what is
    wrong with it."""

    def __init__(self, layer: str, problem: str) -> None:
        self.layer, self.problem = layer, problem
        super().__init__(f"bad layer '{layer}' in spec: {problem}; layers are: {GRAMMAR}, separated by ';'")


def _spec_error(layer: str, problem: str) -> LayerSpecError:
    return LayerSpecError(layer, problem)


def _positive(layer: str, text: str, what: str, minimum: int = 1) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise _spec_error(layer, f"{what} must be an integer >= {minimum}, got '{text}'")
    return int(text)


def _options(layer: str, kind: str, tokens: list[str]) -> dict[str, int]:
    allowed, required = _OPTIONS[kind]
    options: dict[str, int] = {}
    for token in tokens:
        letter, value = token[:1].lower(), token[1:]
        if letter not in allowed or not value:
            raise _spec_error(layer, f"unknown option '{token}' for {kind}")
        if letter in options:
            raise _spec_error(layer, f"option '{letter}' given twice")
        options[letter] = _positive(layer, value, f"'{letter}'", minimum=0 if letter in "pb" else 1)
    missing = [letter for letter in required if letter not in options]
    if missing:
        raise _spec_error(layer, f"{kind} needs a kernel size (e.g. k3)")
    return options


def _conv(layer: str, tokens: list[str], channels: int) -> nn.Conv2d:
    """`conv OUT kK [sS] [pP] [dD] [gG] [b0]` on `channels` input channels."""
    if not tokens:
        raise _spec_error(layer, "conv needs its output channels (e.g. conv 64 k3)")
    out_chans = _positive(layer, tokens[0], "output channels")
    opts = _options(layer, "conv", tokens[1:])
    groups = opts.get("g", 1)
    if channels % groups or out_chans % groups:
        raise _spec_error(layer, f"groups {groups} must divide {channels} input and {out_chans} output channels")
    if opts.get("b", 1) not in (0, 1):
        raise _spec_error(layer, f"b takes 0 (no bias) or 1, got {opts['b']}")
    return nn.Conv2d(
        channels,
        out_chans,
        opts["k"],
        stride=opts.get("s", 1),
        padding=opts.get("p", 0),
        dilation=opts.get("d", 1),
        groups=groups,
        bias=bool(opts.get("b", 1)),
    )


def _pool(layer: str, kind: str, tokens: list[str]) -> nn.Module:
    """`maxpool|avgpool kK [sS] [pP] [dD]`; the stride defaults to the kernel, as in torch."""
    opts = _options(layer, kind, tokens)
    if 2 * opts.get("p", 0) > opts["k"]:
        raise _spec_error(layer, f"padding {opts['p']} must be at most half the kernel {opts['k']}")
    stride, padding = opts.get("s", opts["k"]), opts.get("p", 0)
    if kind == "maxpool":
        return nn.MaxPool2d(opts["k"], stride, padding, dilation=opts.get("d", 1))
    return nn.AvgPool2d(opts["k"], stride, padding)


def _dropout(layer: str, tokens: list[str]) -> nn.Dropout:
    try:
        p = float(tokens[0]) if len(tokens) == 1 else -1.0
    except ValueError:
        p = -1.0
    if not 0 <= p < 1:
        raise _spec_error(layer, "dropout takes one probability from 0 up to (not including) 1, e.g. dropout 0.5")
    return nn.Dropout(p)


# ------------------------------------------------------------------------------------------------ the blocks
class Residual(nn.Module):
    """`res(LAYERS)`: body(x) + skip(x), the skip an identity or a 1x1 projection (ResNet's option B)."""

    def __init__(self, body: nn.Sequential, skip: nn.Module) -> None:
        super().__init__()
        self.body, self.skip = body, skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, shortcut = self.body(x), self.skip(x)
        if out.shape != shortcut.shape:
            raise CnnlabError(
                f"a res(...) block's layers give {_shape(out)} but its skip gives {_shape(shortcut)}: keep the map's "
                "size inside the block (pad each conv: p1 for k3) and let strides alone shrink it"
            )
        return out + shortcut


class Concat(nn.Module):
    """`cat(A | B | ...)`: every branch on the same input, outputs concatenated on channels."""

    def __init__(self, branches: list[nn.Sequential]) -> None:
        super().__init__()
        for i, branch in enumerate(branches, 1):
            self.add_module(f"branch{i}", branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.children()]
        if len({tuple(o.shape[2:]) for o in outs}) > 1:
            sizes = ", ".join("x".join(map(str, o.shape[2:])) for o in outs)
            raise CnnlabError(f"a cat(...) block's branches give maps of different sizes ({sizes}): pad them alike")
        return torch.cat(outs, dim=1)


class GlobalAvgPool(nn.Module):
    """`gap`: the mean of each channel's map (NiN's global average pooling), as a vector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape[1:]))


def _stride(module: nn.Module) -> int:
    """How much a block shrinks the map's side, from its layers' strides (a projection skip must match it)."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride
        return stride if isinstance(stride, int) else stride[0]
    if isinstance(module, Residual):
        return _stride(module.body)
    if isinstance(module, Concat):
        return _stride(next(module.children()))  # the branches agree, or the forward says they do not
    total = 1
    for child in module.children():
        total *= _stride(child)
    return total


# ----------------------------------------------------------------------------------------------- the parser
def split_outside_parentheses(text: str, separator: str, spec: str) -> list[str]:
    """`text` split on `separator` outside parentheses; unbalanced parentheses are an error."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise _spec_error(spec, "a ')' closes nothing")
        if ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise _spec_error(spec, "a '(' is never closed")
    return [*parts, text[start:]]


_BLOCK = re.compile(r"(?:(\d+)\s*\*\s*|(res|cat)\s*)?\((.*)\)", re.S)  # N*(...), res(...), cat(...), (...)


@dataclass
class _State:
    """What the next layer sees: channels, and once flattened, the vector's width (None until a layer fixes it)."""

    channels: int
    flattened: bool = False
    features: int | None = None


class _Builder:
    def __init__(self, spec: str) -> None:
        self.spec = spec

    def sequence(self, text: str, state: _State) -> nn.Sequential:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        counts: Counter[str] = Counter()
        for item in (part.strip() for part in split_outside_parentheses(text, ";", self.spec)):
            if item:
                for kind, module in self.item(item, state):
                    counts[kind] += 1
                    layers[f"{kind}{counts[kind]}"] = module
        return nn.Sequential(layers)

    def item(self, item: str, state: _State) -> list[tuple[str, nn.Module]]:
        block = _BLOCK.fullmatch(item)
        if block is None:
            return [self.layer(item, state)]
        repeats, kind, inner = block.groups()
        if kind and state.flattened:
            raise _spec_error(item, f"{kind} needs a feature map, but the spec flattened it before")
        if kind == "res":
            return [("res", self.residual(item, inner, state))]
        if kind == "cat":
            return [("cat", self.concat(item, inner, state))]
        count = _positive(item, repeats or "1", "the repeat count")  # a bare (...) is a group: once
        if count > MAX_REPEATS:
            raise _spec_error(item, f"a repeat is at most {MAX_REPEATS} times, got {count}")
        copies = [self.sequence(inner, state) for _ in range(count)]
        return [(name.rstrip("0123456789"), module) for copy in copies for name, module in copy.named_children()]

    def residual(self, item: str, inner: str, state: _State) -> Residual:
        before = state.channels
        body = self.sequence(inner, state)
        if state.flattened:
            raise _spec_error(item, "the layers of a res(...) block must keep a feature map (no flatten, gap or fc)")
        stride = _stride(body)
        if stride == 1 and state.channels == before:
            return Residual(body, nn.Identity())
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
        projection = nn.Conv2d(before, state.channels, 1, stride=stride, bias=not has_bn)
        return Residual(body, nn.Sequential(projection, nn.BatchNorm2d(state.channels)) if has_bn else projection)

    def concat(self, item: str, inner: str, state: _State) -> Concat:
        branches, width = [], 0
        for text in split_outside_parentheses(inner, "|", self.spec):
            branch_state = _State(state.channels)
            branches.append(self.sequence(text, branch_state))
            if branch_state.flattened:
                raise _spec_error(item, "the branches of a cat(...) block must keep a feature map")
            width += branch_state.channels
        state.channels = width
        return Concat(branches)

    def layer(self, layer: str, state: _State) -> tuple[str, nn.Module]:
        kind, *tokens = layer.split()
        kind = kind.lower()
        if kind in _NO_ARGS and tokens:
            raise _spec_error(layer, f"{kind} takes no arguments")
        if kind in ("conv", "maxpool", "avgpool", "lrn", "gap") and state.flattened:
            raise _spec_error(layer, f"{kind} needs a feature map, but the spec flattened it before")
        if kind in _ACTIVATIONS:
            return kind, _ACTIVATIONS[kind]()
        if kind == "conv":
            module = _conv(layer, tokens, state.channels)
            state.channels = module.out_channels
            return kind, module
        if kind in ("maxpool", "avgpool"):
            return kind, _pool(layer, kind, tokens)
        return kind, self.other(layer, kind, tokens, state)

    def other(self, layer: str, kind: str, tokens: list[str], state: _State) -> nn.Module:
        if kind == "bn":
            if not state.flattened:
                return nn.BatchNorm2d(state.channels)
            return nn.BatchNorm1d(state.features) if state.features else nn.LazyBatchNorm1d()
        if kind == "lrn":
            return nn.LocalResponseNorm(_options(layer, "lrn", tokens).get("n", 5), alpha=1e-4, beta=0.75, k=2.0)
        if kind == "dropout":
            return _dropout(layer, tokens)
        if kind == "flatten":
            state.flattened = True
            return nn.Flatten()
        if kind == "gap":
            state.flattened, state.features = True, state.channels
            return GlobalAvgPool()
        if kind == "fc":
            return self.linear(layer, tokens, state)
        raise _spec_error(layer, f"unknown layer '{kind}'")

    def linear(self, layer: str, tokens: list[str], state: _State) -> nn.Module:
        if len(tokens) != 1:
            raise _spec_error(layer, "fc takes exactly its output width (e.g. fc 10)")
        if not state.flattened:
            raise _spec_error(layer, "fc needs 'flatten' (or 'gap') before it")
        out_features = _positive(layer, tokens[0], "output width")
        module = nn.Linear(state.features, out_features) if state.features else nn.LazyLinear(out_features)
        state.features = out_features
        return module


def build_layer_spec(spec: str, in_chans: int) -> nn.Sequential:
    """Build the layers of a spec as an nn.Sequential for an input with `in_chans` channels.

    A linear or 1d BatchNorm whose input width depends on the image size (first `fc` after `flatten`) is lazy: its
    width is fixed by the first forward pass, as `summarize` runs one.
    """
    model = _Builder(spec).sequence(spec, _State(in_chans))
    if not len(model):
        raise CnnlabError(f"empty layer spec; layers are: {GRAMMAR}, separated by ';'")
    return model


def build_head_spec(spec: str, features: int) -> tuple[nn.Sequential, int]:
    """The layers of a spec applied to a vector of `features` pooled features (a classifier head: fc, activations,
    dropout, bn; no conv or pool, the map is already pooled), and the width they end with."""
    state = _State(features, flattened=True, features=features)
    layers = _Builder(spec).sequence(spec, state)
    if not len(layers):
        raise CnnlabError(f"empty layer spec; layers are: {GRAMMAR}, separated by ';'")
    return layers, state.features
