"""Results that people read: tables (markdown, CSV, rich), cell formatting, version stamps and output folders.

`cnnlab compare`, `cnnlab runs`, the experiments and the benchmarks all build their tables here, so a number reads
the same everywhere; every results file is written through `cnnlab.files`' atomic writes.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import io
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cnnlab._version import __version__
from cnnlab.files import write_json, write_text  # noqa: F401 (results files are written through these)


# ------------------------------------------------------------------------------------------------------ cells
def format_number(value) -> str:
    """A cell by its type: integers and floats from 1,000 up get thousands separators (parameter counts read at a
    glance), smaller floats keep 4 significant digits; strings are printed as they are (so a caller can format a
    cell itself) and None is an empty cell."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def format_metric(column: str, value) -> str:
    """A cell by what its column measures, named as in results.json: accuracies as percentages, parameter counts
    with separators, MACs in millions, losses to 4 places, seconds to 0.1 s, throughputs to whole images. A missing
    number (None, NaN) is "-"; any other column falls back to `format_number`."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if column.endswith(("accuracy", "_error", "accuracy_drop")):  # an accuracy drop is in accuracy's units
        return f"{value:.2%}"
    if column.endswith("_pct"):  # already in percent
        return f"{value:.2f}"
    if column == "params":
        return f"{value:,}"
    if column == "macs":
        return f"{value / 1e6:,.2f}M"
    if column.endswith("_loss"):
        return f"{value:.4f}"
    if column.endswith("_seconds"):
        return f"{value:,.1f}s"
    if column.endswith("per_second"):
        return f"{value:,.0f}"
    return format_number(value)


# ------------------------------------------------------------------------------------------------------ tables
def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table; cells that are not strings go through `format_number`, and a `|` inside a cell is
    escaped so it cannot split the cell."""

    def cell(value) -> str:
        return (value if isinstance(value, str) else format_number(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows])


def csv_text(columns: Sequence[str], rows: Iterable[dict]) -> str:
    """The rows as CSV with a header line; keys outside `columns` are left out, raw values kept (no formatting)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def rich_table(headers: Sequence[str], rows: Iterable[Sequence[str]], title: str | None = None):
    """The same table for the terminal (rich), as the CLI prints it."""
    from rich.table import Table

    table = Table(*headers, title=title)
    for row in rows:
        table.add_row(*row)
    return table


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence],
    *,
    caption: str | None = None,
    right_from: int | None = None,
    footer: Sequence | None = None,
) -> str:
    """The same table for a notebook (`_repr_html_`): cells as `markdown_table` formats them, HTML-escaped; the
    columns from `right_from` on right-aligned (numbers), `footer` a bold last row (totals)."""
    from html import escape

    def line(cells: Sequence, tag: str) -> str:
        parts = []
        for index, value in enumerate(cells):
            text = escape(value if isinstance(value, str) else format_number(value))
            right = right_from is not None and index >= right_from
            parts.append(f'<{tag} style="text-align:{"right" if right else "left"}">{text}</{tag}>')
        return "<tr>" + "".join(parts) + "</tr>"

    body = [line(row, "td") for row in rows]
    if footer is not None:
        body.append(line(footer, "th"))
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    head = line(headers, "th")
    return f"<table>{title}<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


# ------------------------------------------------------------------------------------------------------ files
def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """results.csv, written atomically like every results file (`write_text`, `write_json`)."""
    write_text(path, csv_text(columns, rows))


def versions() -> dict[str, str]:
    """The versions every results file is stamped with, so a number can be traced to the code that made it."""
    import numpy
    import torch

    return {
        "cnnlab": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision_version(),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def torchvision_version() -> str:
    """torchvision.__version__ (with its build tag, e.g. 0.29.1+cpu) read from its version.py: importing torchvision
    imports torch._dynamo, a second of every command's start-up that nothing else in a training run needs."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    spec = importlib.util.find_spec("torchvision")
    text = (Path(spec.origin).parent / "version.py").read_text() if spec and spec.origin else ""
    found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, re.M)
    return found.group(1) if found else importlib.metadata.version("torchvision")


def timestamped_dir(*parts: str, root: str | Path = "runs") -> Path:
    """ROOT/PART-PART-YYYYmmdd-HHMMSS, the default output folder of a run, comparison or experiment; a dataset name
    such as `folder:/data/x` becomes one safe path component."""
    safe = [part.replace(":", "-").replace("/", "_") for part in parts]
    return Path(root) / "-".join([*safe, f"{datetime.now():%Y%m%d-%H%M%S}"])
