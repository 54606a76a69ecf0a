"""`summarize`: one forward pass on a blank image, recording each leaf layer's output shape, params, MACs and
receptive field; `summary_table` prints it.

    s = summarize("lenet5", (1, 28, 28))          # a registered model, a layer spec, or any nn.Module
    s.rows[0]  # LayerRow(name='conv1', kind='Conv2d', output_shape=(6, 24, 24), params=156, macs=86400,
               #          receptive_field=5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.table import Table
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError, OptionValueError
from cnnlab.measure.counting import blank_image, count_params, eval_mode, input_error, run_forward, shape_text
from cnnlab.measure.receptive import ForwardTracer
from cnnlab.measure.spec import build_layer_spec, parse_input_shape
from cnnlab.models import references
from cnnlab.registry import create_model, model_info

# The last row, when needed: params of layers the forward never calls (GoogLeNet's aux heads in eval), params held
# by a parent module (ConvNeXt's layer scale), and MACs of functional ops in a parent's forward.
REST_NAME, REST_KIND = "(other)", "outside leaf calls"
DEFAULT_INPUT = (3, 32, 32)  # a layer spec's or a network's in code: they have no size of their own


@dataclass
class LayerRow:
    name: str  # dotted module path, e.g. "layer1.0.conv1"
    kind: str  # the module's class, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # per image, without the batch dimension: (6, 24, 24)
    params: int  # parameters not already counted in an earlier row (a layer called twice counts once)
    macs: int  # multiply-accumulates of this call
    receptive_field: int | None  # input pixels per side seen by one output pixel (widest path); None once flattened


@dataclass(repr=False)
class Summary:
    """`summarize`'s result; it prints as its table (`repr`) and shows as an HTML table in a notebook."""

    rows: list[LayerRow]
    input_shape: tuple[int, int, int]
    total_params: int
    trainable_params: int
    total_macs: int
    model_name: str = ""

    def __repr__(self) -> str:
        return summary_text(self)

    def _repr_html_(self) -> str:
        return summary_html(self)


def _resolve(
    model_or_spec: nn.Module | str, input_shape: tuple[int, int, int], num_classes: int | None, small_input: bool
) -> tuple[nn.Module, str]:
    """The module to summarise and the name its errors use. A string is a registered model's name (built for
    this input's channels and, for a sized head, its side; `num_classes` and `small_input` as `cnnlab train` builds
    it) or else a layer spec. Both options are refused where they cannot apply: a spec writes its own head, and
    only a zoo model has a stem to swap."""
    whole = isinstance(num_classes, int) and not isinstance(num_classes, bool)
    if num_classes is not None and not (whole and num_classes >= 1):
        raise OptionValueError("num_classes", f"must be a positive whole number, got {num_classes!r}")
    if isinstance(model_or_spec, nn.Module):
        label = getattr(model_or_spec, "model_name", None) or type(model_or_spec).__name__
        if num_classes is not None or small_input:
            raise CnnlabError(f"--num-classes and --small-input build a zoo model; {label} is already built")
        return model_or_spec, label
    from cnnlab.building import REFERENCE, SPEC, ZOO, builder_kwargs, model_kind  # one rule for what text names

    text = model_or_spec.strip()
    kind = model_kind(text)
    if kind != ZOO and small_input:  # the words `cnnlab train` uses (building.check_model_name)
        raise CnnlabError(f"--small-input swaps a zoo model's stem; '{text}' is your own network: change its layers")
    if kind == REFERENCE:  # the user's code: the CLI and the API name it, a request never does
        reference = references.parse_reference(text)
        return references.build_from_reference(reference, num_classes, input_shape[0]), text
    if kind == SPEC:
        if num_classes is not None:
            raise CnnlabError(f"--num-classes does not apply to spec '{text}': its last fc layer sets the classes")
        return build_layer_spec(text, input_shape[0]), f"spec '{text}'"
    model_info(text)  # an unknown name fails here, listing the closest ones
    kwargs = builder_kwargs({} if num_classes is None else {"num_classes": num_classes}, small_input)
    try:
        return create_model(text, in_chans=input_shape[0], input_size=input_shape[1], **kwargs), text
    except ValueError as error:  # a sized head that cannot fit the input (LeNet-5 at 8x8)
        raise input_error(input_shape, text, error, too_small=False) from error  # no pass ran: no map to blame


def _input_shape(model_or_spec, given) -> tuple[int, int, int]:
    from cnnlab.building import ZOO, model_kind

    if isinstance(given, str):
        return parse_input_shape(given)
    if given is not None:
        return tuple(given)
    if isinstance(model_or_spec, str) and model_kind(model_or_spec) == ZOO:
        return model_info(model_or_spec.strip()).input_size  # an unknown name fails here with the closest names
    return DEFAULT_INPUT


def _per_image_shape(output) -> tuple[int, ...]:
    tensor = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
    return tuple(tensor.shape[1:]) if tensor is not None else ()


def _field_size(tracer: ForwardTracer, output) -> int | None:
    tensor = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
    if tensor is None or tensor.dim() != 4:
        return None  # a flattened vector has no spatial field (and a linear layer on it sees everything)
    field = tracer.field_of(tensor)
    return field.size if field is not None else None


def summarize(
    model_or_spec: nn.Module | str,
    input_shape: tuple[int, int, int] | str | None = None,
    num_classes: int | None = None,
    small_input: bool = False,
) -> Summary:
    """Per leaf layer, in execution order (one row per call): output shape for one image, params, MACs and
    receptive field, then the totals, which equal `count_params` and `count_macs`. `input_shape`: (C, H, W) or
    "CxHxW"; None: a registered model's own input size, else 3x32x32. A registered model is built
    with `num_classes` (default: its own) and, with `small_input`, the CIFAR-style stem `cnnlab train` gives it.

    Runs in eval mode and restores the model's flags. Receptive fields follow the widest path through residual
    adds and concats (see `ForwardTracer`); a row whose output is not a 4-D map (after a flatten) gets None. If
    some parameters or MACs
    are outside every leaf layer's call, a last row named "(other)" holds them, so the rows add up to the totals.
    """
    input_shape = _input_shape(model_or_spec, input_shape)
    model, label = _resolve(model_or_spec, input_shape, num_classes, small_input)
    image = blank_image(model, input_shape)
    counter = FlopCounterMode(display=False)
    tracer = ForwardTracer(image)
    rows: list[LayerRow] = []
    counted: set[int] = set()  # ids of parameters already in a row
    flops_at_start: list[int] = []

    def before(module: nn.Module, args) -> None:
        flops_at_start.append(counter.get_total_flops())

    def after(module: nn.Module, args, output, name: str) -> None:
        macs = (counter.get_total_flops() - flops_at_start.pop()) // 2
        new = [p for p in module.parameters() if id(p) not in counted]
        counted.update(id(p) for p in new)
        rows.append(
            LayerRow(
                name,
                type(module).__name__,
                _per_image_shape(output),
                sum(p.numel() for p in new),
                macs,
                _field_size(tracer, output),
            )
        )

    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:  # leaf layers only, so no call is counted twice
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(lambda m, a, o, name=name or label: after(m, a, o, name)))
    try:
        with eval_mode(model), torch.no_grad(), counter, tracer:
            run_forward(model, image, label)
    finally:
        for handle in handles:
            handle.remove()

    total_params, total_macs = count_params(model), counter.get_total_flops() // 2
    rest_params, rest_macs = total_params - sum(r.params for r in rows), total_macs - sum(r.macs for r in rows)
    if rest_params or rest_macs:
        rows.append(LayerRow(REST_NAME, REST_KIND, (), rest_params, rest_macs, None))
    return Summary(rows, tuple(input_shape), total_params, count_params(model, trainable_only=True), total_macs, label)


HEADERS = ("layer", "type", "output shape", "params", "MACs", "receptive field")
CAPTION = "MACs for one image; receptive field in input pixels per side"


def summary_cells(summary: Summary) -> tuple[list[list[str]], list[str]]:
    """The table's cells, one row per layer, and the totals row: what the terminal and the notebook both show."""
    rows = [
        [
            row.name,
            row.kind,
            shape_text(row.output_shape) if row.output_shape else "-",
            f"{row.params:,}",
            f"{row.macs:,}",
            "-" if row.receptive_field is None else str(row.receptive_field),
        ]
        for row in summary.rows
    ]
    trainable = "" if summary.trainable_params == summary.total_params else f" ({summary.trainable_params:,} trainable)"
    total = [
        "total",
        "",
        f"input {shape_text(summary.input_shape)}",
        f"{summary.total_params:,}{trainable}",
        f"{summary.total_macs:,}",
        "",
    ]
    return rows, total


def summary_title(summary: Summary) -> str | None:
    return f"{summary.model_name} at {shape_text(summary.input_shape)}" if summary.model_name else None


def summary_table(summary: Summary) -> Table:
    """The summary as a rich table: one line per row, then the totals."""
    table = Table(*HEADERS, title=summary_title(summary), caption=CAPTION)
    for column in table.columns[3:]:
        column.justify = "right"
    rows, total = summary_cells(summary)
    for index, row in enumerate(rows):
        table.add_row(*row, end_section=index == len(rows) - 1)
    table.add_row(*total, style="bold")
    return table


def summary_html(summary: Summary) -> str:
    """The summary as an HTML table, for a notebook."""
    from cnnlab.reporting import html_table

    rows, total = summary_cells(summary)
    caption = "; ".join(part for part in (summary_title(summary), CAPTION) if part)
    return html_table(HEADERS, rows, caption=caption, right_from=3, footer=total)


def summary_text(summary: Summary, width: int = 110) -> str:
    """The rich table as plain text (`repr` of a Summary in a terminal)."""
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(summary_table(summary))
    return buffer.getvalue().rstrip()
