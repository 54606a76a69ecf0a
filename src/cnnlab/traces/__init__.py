"""The tutorials' interactive traces, recomputed: `trace(name, **options) -> dict`, what `cnnlab trace` prints.

    trace("batchnorm", batch=2)            # the Chapter 14 tensor, then seeded batches like its "select batch" widget
    trace("residual", x=2.0)               # the skip-connection slider: F(x), x, F(x) + x, ReLU, the gradients
    trace("bottleneck", channels=256)      # 1x1-3x3-1x1 against two 3x3 convs: shapes, parameters, MACs
    trace("conv", input="5x5", kernel=3)   # the output-size formula filled in, and every window of a small input

Every value comes from running code: the from-scratch version (`cnnlab.scratch`, NumPy or plain tensor
arithmetic) and torch.nn side by side where both exist. The result is plain JSON data:

    {"name": "batchnorm", "title": "...", "options": {...},      # the options as used, defaults filled in
     "columns": ["step", "quantity", "scratch", "torch.nn", "max |diff|"],
     "rows": [[1, "x, channel 0", [1.0, 2.0, ...], [1.0, 2.0, ...], 0.0], ...],  # one list per row, as columns
     "notes": ["...", ...],                                        # what to read off the table, errata IDs
     "data": {"x": [[...]], ...}}                                  # raw arrays (nested lists) for plots

A cell is a number, a string, a list of numbers or None (nothing to compare). Floats are rounded to 6 decimals.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from cnnlab.errors import CnnlabError, closest


def _registry() -> dict[str, Callable[..., dict]]:
    from cnnlab.traces.batchnorm import batchnorm_trace
    from cnnlab.traces.residual import residual_trace
    from cnnlab.traces.running_stats import running_stats_trace
    from cnnlab.traces.shapes import bottleneck_trace, conv_trace

    return {
        "batchnorm": batchnorm_trace,
        "bottleneck": bottleneck_trace,
        "conv": conv_trace,
        "residual": residual_trace,
        "running_stats": running_stats_trace,
    }


def list_traces() -> list[str]:
    return sorted(_registry())


def trace_options(name: str) -> dict[str, object]:
    """The options of one trace and their defaults, e.g. {"x": 2.0, "weights": "1,-0.5,1,-0.4", "depth": 10}."""
    parameters = inspect.signature(_lookup(name)).parameters.values()
    return {p.name: p.default for p in parameters}


def trace(name: str, **options) -> dict:
    """Run one trace; see the module docstring for the result's shape. Unknown names and options are
    CnnlabErrors that list the valid ones."""
    function = _lookup(name)
    valid = trace_options(name)
    for option in options:
        if option not in valid:
            raise CnnlabError(f"trace {name} has no option '{option}'; its options: {', '.join(valid) or 'none'}")
    result = function(**options)
    result["options"] = {**valid, **options}
    return result


def _lookup(name: str) -> Callable[..., dict]:
    registry = _registry()
    if name not in registry:
        hints = closest(name, registry)
        hint = f"did you mean {hints[0]}? " if hints else ""
        raise CnnlabError(f"unknown trace '{name}'; {hint}the traces are: {', '.join(sorted(registry))}")
    return registry[name]
