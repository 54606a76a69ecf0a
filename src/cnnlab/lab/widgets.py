"""The Widgets page's numbers, computed by cnnlab's own code: the conv output-size calculator and the kernel-economy
counts through `cnnlab.measure.summarize`, the BatchNorm and residual traces through `cnnlab.traces.trace`."""

from __future__ import annotations

from cnnlab.errors import CnnlabError, OptionValueError
from cnnlab.lab.security import LabRequestError
from cnnlab.lab.views import serialized

TRACES = ("batchnorm", "residual", "bottleneck", "conv_trace")
# Sides and channels above this are refused: a widget is a sketch, not a workload. The layers run on the meta
# device, so even the cap costs no memory (4096 channels at 4096x4096 once asked for 274 GB of real tensors).
LIMIT = 4096


def _int(params: dict, name: str, default: int, low: int = 0) -> int:
    text = params.get(name, default)
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise OptionValueError(name, f"must be a whole number, got '{text}'") from None
    if not low <= value <= LIMIT:
        raise OptionValueError(name, f"must be a whole number from {low} to {LIMIT:,}, got {value:,}")
    return value


def _flow(spec: str, shape: tuple[int, int, int]) -> dict:
    from cnnlab.measure import summarize
    from cnnlab.models.meta import on_meta

    with on_meta():  # shapes and counts only
        summary = summarize(spec, shape)
    last = summary.rows[-1]
    return {
        "spec": spec,
        "output_shape": list(last.output_shape),
        "params": summary.total_params,
        "macs": summary.total_macs,
        "receptive_field": last.receptive_field,
    }


def conv_calculator(params: dict) -> dict:
    """Output side of one conv: floor((n + 2p - d(k-1) - 1) / s) + 1, measured by running the layer."""
    n, c, k = _int(params, "n", 32, 1), _int(params, "c", 3, 1), _int(params, "k", 3, 1)
    s, p, d, out = _int(params, "s", 1, 1), _int(params, "p", 1), _int(params, "d", 1, 1), _int(params, "out", 16, 1)
    formula = (n + 2 * p - d * (k - 1) - 1) // s + 1
    if formula < 1:
        raise LabRequestError(f"a {k}x{k} kernel (dilation {d}) does not fit a {n}x{n} input padded by {p}", 400)
    return {"formula_side": formula, **_flow(f"conv {out} k{k} s{s} p{p} d{d}", (c, n, n))}


def kernel_economy(params: dict) -> dict:
    """One big kernel against a stack of 3x3s with the same receptive field, and the 1x1 bottleneck."""
    c, n = _int(params, "c", 64, 1), _int(params, "n", 32, 1)
    wide = _int(params, "wide", 256, 4)
    pairs = [
        (_flow(f"conv {c} k5 p2", (c, n, n)), _flow(f"conv {c} k3 p1; relu; conv {c} k3 p1", (c, n, n))),
        (_flow(f"conv {c} k7 p3", (c, n, n)), _flow("; ".join([f"conv {c} k3 p1"] * 3), (c, n, n))),
        (
            _flow(f"conv {wide} k3 p1; relu; conv {wide} k3 p1", (wide, n, n)),
            _flow(f"conv {wide // 4} k1; relu; conv {wide // 4} k3 p1; relu; conv {wide} k1", (wide, n, n)),
        ),
    ]
    names = ["5x5 vs two 3x3", "7x7 vs three 3x3", f"two 3x3 at {wide} channels vs the 1x1 bottleneck"]
    return {
        "pairs": [
            {"name": name, "a": a, "b": b, "saving": 1 - b["params"] / a["params"]}
            for name, (a, b) in zip(names, pairs)
        ]
    }


@serialized
def compute(name: str, params: dict) -> dict:
    if name == "conv":
        return conv_calculator(params)
    if name == "kernels":
        return kernel_economy(params)
    try:
        from cnnlab.traces import trace
    except ImportError:
        raise LabRequestError(f"widget '{name}' needs cnnlab.traces, which this install lacks", 404) from None
    options = {k: _value(v) for k, v in params.items()}
    try:
        return trace(name, **options)
    except TypeError as error:  # an option the trace does not take
        raise CnnlabError(f"widget '{name}': {error}") from None


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
