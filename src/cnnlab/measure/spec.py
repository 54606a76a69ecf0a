"""Text to shapes and networks: `--input 3x224x224` and layer specs such as "conv 64 k7 s2 p3; maxpool k3 s2 p1".

A layer spec is a `;`-separated list of layers, for trying out shapes without writing a model:

    conv OUT kK [sS] [pP] [gG] [dD]   Conv2d, stride 1, padding 0, groups 1, dilation 1 unless given
    maxpool kK [sS] [pP] [dD]         MaxPool2d, stride K unless given
    avgpool kK [sS] [pP]              AvgPool2d, stride K unless given
    relu | bn | flatten | fc OUT      ReLU, BatchNorm (2d, or 1d after flatten), Flatten, Linear

Layers are named by kind and position (conv1, maxpool1, conv2, ...) so a summary reads like a model's.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict

from torch import nn

from cnnlab.errors import CnnlabError, OptionValueError

GRAMMAR = (
    "conv OUT kK [sS] [pP] [gG] [dD] | maxpool kK [sS] [pP] [dD] | avgpool kK [sS] [pP] | relu | bn | flatten | fc OUT"
)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """ "1x28x28" -> (1, 28, 28). Anything else (a bare "28", "3x224", zeros) is a one-line CnnlabError."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or min(int(size) for size in match.groups()) < 1:
        raise OptionValueError("input", f"must look like 3x224x224 (CxHxW, each at least 1), got '{text}'")
    channels, height, width = (int(size) for size in match.groups())
    return channels, height, width


# Which option letters each layer takes, and which it must have.
_OPTIONS = {"conv": ("kspgd", "k"), "maxpool": ("kspd", "k"), "avgpool": ("ksp", "k")}
_NO_ARGS = ("relu", "bn", "flatten")
LAYER_KINDS = ("conv", "maxpool", "avgpool", "relu", "bn", "flatten", "fc")  # the first word of every spec layer


def _spec_error(layer: str, problem: str) -> CnnlabError:
    return CnnlabError(f"bad layer '{layer}' in spec: {problem}; layers are: {GRAMMAR}, separated by ';'")


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
        options[letter] = _positive(layer, value, f"'{letter}'", minimum=0 if letter == "p" else 1)
    missing = [letter for letter in required if letter not in options]
    if missing:
        raise _spec_error(layer, f"{kind} needs a kernel size (e.g. k3)")
    return options


def _conv(layer: str, tokens: list[str], channels: int) -> nn.Conv2d:
    """`conv OUT [kK] [sS] [pP] [dD] [gG]` on `channels` input channels."""
    if not tokens:
        raise _spec_error(layer, "conv needs its output channels (e.g. conv 64 k3)")
    out_chans = _positive(layer, tokens[0], "output channels")
    opts = _options(layer, "conv", tokens[1:])
    groups = opts.get("g", 1)
    if channels % groups or out_chans % groups:
        raise _spec_error(layer, f"groups {groups} must divide {channels} input and {out_chans} output channels")
    return nn.Conv2d(
        channels,
        out_chans,
        opts["k"],
        stride=opts.get("s", 1),
        padding=opts.get("p", 0),
        dilation=opts.get("d", 1),
        groups=groups,
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


def build_layer_spec(spec: str, in_chans: int) -> nn.Sequential:
    """Build the layers of a spec as an nn.Sequential for an input with `in_chans` channels.

    A linear or 1d BatchNorm whose input width depends on the image size (first `fc` after `flatten`) is lazy: its
    width is fixed by the first forward pass, as `summarize` runs one.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    counts: Counter[str] = Counter()
    channels, features = in_chans, None  # features: vector width after flatten, None until known
    flattened = False
    for layer in (part.strip() for part in spec.split(";")):
        if not layer:
            continue
        kind, *tokens = layer.split()
        kind = kind.lower()
        if kind in _NO_ARGS and tokens:
            raise _spec_error(layer, f"{kind} takes no arguments")
        if kind in ("conv", "maxpool", "avgpool") and flattened:
            raise _spec_error(layer, f"{kind} needs a feature map, but the spec flattened it before")
        if kind == "conv":
            module: nn.Module = _conv(layer, tokens, channels)
            channels = module.out_channels
        elif kind in ("maxpool", "avgpool"):
            module = _pool(layer, kind, tokens)
        elif kind == "relu":
            module = nn.ReLU()
        elif kind == "bn":
            if not flattened:
                module = nn.BatchNorm2d(channels)
            else:
                module = nn.BatchNorm1d(features) if features else nn.LazyBatchNorm1d()
        elif kind == "flatten":
            module, flattened = nn.Flatten(), True
        elif kind == "fc":
            if len(tokens) != 1:
                raise _spec_error(layer, "fc takes exactly its output width (e.g. fc 10)")
            if not flattened:
                raise _spec_error(layer, "fc needs 'flatten' before it")
            out_features = _positive(layer, tokens[0], "output width")
            module = nn.Linear(features, out_features) if features else nn.LazyLinear(out_features)
            features = out_features
        else:
            raise _spec_error(layer, f"unknown layer '{kind}'")
        counts[kind] += 1
        layers[f"{kind}{counts[kind]}"] = module
    if not layers:
        raise CnnlabError(f"empty layer spec; layers are: {GRAMMAR}, separated by ';'")
    return nn.Sequential(layers)
