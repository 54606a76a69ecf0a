"""The zoo as data: `catalog()` gives one dict per registered model, what `cnnlab models` prints and the web lab
shows; `timeline_plot` draws the evolution chart (`cnnlab models --plot timeline.png`).

    rows = catalog("resnet*")
    rows[0]  # {"name": "resnet101", "family": "ResNet", "year": 2015, "params": 44549160, "depth": 101, ...}

Everything is measured on the meta device (shapes only: no memory, no init, no download): parameters, MACs at the
default input, depth (weight layers on the longest path, `cnnlab.measure.receptive.main_path_depth`) and the
receptive field of `forward_features` (`receptive_field`). ImageNet top-1 comes from torchvision's weights
metadata for models with a torchvision twin: `top1` for its DEFAULT weights, `top1_v1` for its first ones.
"""

from __future__ import annotations

import collections
import functools
import os

# Imports stay inside the functions: this file is imported with the whole models package.

FIELDS = (
    "name",
    "family",
    "year",
    "input",
    "params",
    "macs",
    "depth",
    "receptive_field",
    "top1",
    "top1_weights",
    "top1_v1",
    "twin",
    "key_idea",
    "paper",
)


def imagenet_top1(twin: str | None) -> tuple[float | None, str | None, float | None]:
    """(DEFAULT weights' ImageNet-1K acc@1, their enum name, the first weights' acc@1), from torchvision's
    metadata; Nones for a model without a twin or weights."""
    if not twin:
        return None, None, None
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(twin)
    except ValueError:  # no weights enum for this builder
        return None, None, None
    first = next(iter(weights))
    metric = lambda w: w.meta["_metrics"]["ImageNet-1K"]["acc@1"]  # noqa: E731
    return metric(weights.DEFAULT), f"{type(weights.DEFAULT).__name__}.{weights.DEFAULT.name}", metric(first)


def catalog_row(name: str) -> dict:
    """One model's row (a fresh dict: callers may change it)."""
    return dict(_measured_row(name))


@functools.cache  # the lab asks again and again; the registry does not change
def _measured_row(name: str) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab.measure.counting import count_params
    from cnnlab.measure.receptive import trace_network
    from cnnlab.models.meta import on_meta
    from cnnlab.registry import create_model, model_info

    info = model_info(name)
    with on_meta():  # shapes only
        model = create_model(name)
    counter = FlopCounterMode(display=False)
    with counter:
        field, depth = trace_network(model, info.input_size, name)
    top1, weights, top1_v1 = imagenet_top1(info.twin)
    return {
        "name": name,
        "family": info.family,
        "year": info.year,
        "input": "x".join(map(str, info.input_size)),
        "params": count_params(model),
        "macs": counter.get_total_flops() // 2,
        "depth": depth,
        "receptive_field": field.size if field is not None else None,
        "top1": top1,
        "top1_weights": weights,
        "top1_v1": top1_v1,
        "twin": info.twin,
        "key_idea": info.key_idea,
        "paper": info.paper,
    }


def catalog(pattern: str = "*") -> list[dict]:
    """One dict per registered model matching the fnmatch `pattern` (keys: FIELDS), by name. JSON-ready."""
    from cnnlab.errors import CnnlabError
    from cnnlab.registry import list_models

    names = list_models(pattern)
    if not names:
        raise CnnlabError(f"no model matches '{pattern}' (try cnnlab models)")
    return [catalog_row(name) for name in names]


def family_ideas(rows: list[dict]) -> dict[str, str]:
    """Each family's key idea: that of its earliest model, by year then name (ResNet: mini_resnet's "skip
    connections", not the plain baselines'; MobileNet: v1's, not v3's)."""
    ideas: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r["year"], r["name"])):
        ideas.setdefault(row["family"], row["key_idea"])
    return ideas


def _spread(rows: list[dict]) -> list[float]:
    """x positions: each model at its year, the models of one year spread over +-0.35 so markers do not stack."""
    by_year = collections.defaultdict(list)
    for index, row in enumerate(rows):
        by_year[row["year"]].append(index)
    xs = [0.0] * len(rows)
    for year, indices in by_year.items():
        for k, index in enumerate(indices):
            xs[index] = year + (0.0 if len(indices) == 1 else -0.35 + 0.7 * k / (len(indices) - 1))
    return xs


def timeline_plot(rows: list[dict], path: str | os.PathLike, dpi: int = 80) -> str:
    """The evolution chart: ImageNet top-1 against year (torchvision's first ImageNet weights of each model with a
    twin; marker area proportional to parameters), and parameters against year for every model; one colour per
    family, whose key idea the legend gives. Returns the path written."""
    from cnnlab.notebook import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: (r["year"], r["family"], r["params"]))
    ideas = family_ideas(rows)
    families = sorted(ideas, key=lambda f: min(r["year"] for r in rows if r["family"] == f))
    colours = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(families)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 10), height_ratios=[3, 2])
    ranked = [r for r in rows if r["top1_v1"] is not None]
    for x, row in zip(_spread(ranked), ranked):
        top.scatter(
            x,
            row["top1_v1"],
            s=8 + row["params"] / 4e5,
            color=colours[row["family"]],
            alpha=0.75,
            edgecolors="black",
            linewidths=0.4,
        )
    for family in families:  # the family's name at its best model
        best = max((r for r in ranked if r["family"] == family), key=lambda r: r["top1_v1"], default=None)
        if best is not None:
            top.annotate(
                family,
                (best["year"], best["top1_v1"]),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize=8,
            )
    top.set(ylabel="ImageNet top-1 (%)", title="ImageNet top-1 by year (torchvision's first weights; area ~ params)")
    for x, row in zip(_spread(rows), rows):
        bottom.scatter(x, row["params"], s=14, color=colours[row["family"]], edgecolors="black", linewidths=0.3)
    bottom.set(yscale="log", ylabel="parameters", xlabel="year published", title="Every model in the zoo: parameters")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colours[f], label=f"{f}: {ideas[f]}") for f in families
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return str(path)


FORMATS = ("table", "json", "csv")


def _readable(count: int | None) -> str:
    if count is None:
        return "-"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g} {prefix}"
    return str(count)


def render(rows: list[dict], fmt: str = "table", width: int | None = None):
    """The catalog as a rich Table ("table", laid out for a terminal `width` wide) or as text ("json", "csv":
    every field, raw numbers)."""
    import csv
    import io
    import json

    from cnnlab.errors import CnnlabError

    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt != "table":
        raise CnnlabError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    return _table(rows, width)


def _table(rows: list[dict], width: int | None = None):
    """One section per family, headed by its name and first year; each model's numbers and key idea (a ditto mark
    where it is the family's). Under 120 columns the input goes under the name and MACs are left out (json/csv
    have every field)."""
    from rich.table import Table

    wide = width is None or width >= 120
    columns = ["name", "input", "params", "MACs", "depth", "RF", "top-1"]
    if not wide:
        columns = [c for c in columns if c not in ("input", "MACs")]
    table = Table(
        *columns,
        "key idea",
        caption="depth: weight layers on the longest path; RF: receptive field of the "
        "last feature map (pixels); top-1: ImageNet, torchvision's default weights",
    )
    for column in table.columns[:-1]:
        column.no_wrap = True  # names and numbers stay whole; the key idea wraps
        column.justify = "left" if column.header in ("name", "input") else "right"
    ideas = family_ideas(rows)
    by_family = collections.defaultdict(list)
    for row in rows:
        by_family[row["family"]].append(row)
    for family, members in sorted(by_family.items(), key=lambda item: (min(r["year"] for r in item[1]), item[0])):
        table.add_row(f"[bold]{family}[/bold], {min(r['year'] for r in members)}", *[""] * len(columns))
        for row in members:
            top1 = "-" if row["top1"] is None else f"{row['top1']:.1f}%"
            cells = {
                "name": f"  {row['name']}" if wide else f"  {row['name']}\n    {row['input']}",
                "input": row["input"],
                "params": f"{row['params']:,}",
                "MACs": _readable(row["macs"]),
                "depth": str(row["depth"]),
                "RF": str(row["receptive_field"] or "-"),
                "top-1": top1,
            }
            idea = row["key_idea"] if row["key_idea"] != ideas[family] or row is members[0] else '"'
            table.add_row(*(cells[c] for c in columns), idea, end_section=row is members[-1])
    return table
