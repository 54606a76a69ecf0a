"""What every trace shares: turning arrays into JSON cells, and the side-by-side difference column."""

from __future__ import annotations

import math

import numpy as np
import torch

DECIMALS = 6


def cell(value):
    """A JSON-ready cell: numbers rounded to 6 decimals, arrays and tensors as (nested) lists, strings kept."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [cell(v) for v in value.tolist()] if value.ndim else cell(value.item())
    if isinstance(value, (list, tuple)):
        return [cell(v) for v in value]
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = round(float(value), DECIMALS)
    return 0.0 if number == 0 else number  # no "-0.0" in tables


def max_diff(a, b) -> float:
    """max |a - b| over all elements, the "agree" column of a side-by-side row."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
    return cell(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))


def result(name: str, title: str, columns: list[str], rows: list[list], notes: list[str], data: dict) -> dict:
    assert all(len(row) == len(columns) for row in rows), "every row has one cell per column"
    return {
        "name": name,
        "title": title,
        "columns": columns,
        "rows": [[cell(c) for c in row] for row in rows],
        "notes": notes,
        "data": {key: cell(value) for key, value in data.items()},
    }


def format_cell(value) -> str:
    """A cell as the terminal table shows it: lists in brackets, 4 significant decimals, None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(format_cell(v) for v in value) + "]"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-2):  # small gradients keep 3 digits
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if not math.isclose(value, round(value)) else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
