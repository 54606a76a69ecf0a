"""`cnnlab trace NAME`: its flags, and the table or JSON it prints (cli.py holds only the hook-up)."""

from __future__ import annotations

import argparse
import json

from cnnlab.errors import CnnlabError

# flag dest -> (type, help); a flag is passed on only when given, and only to a trace that has that option.
FLAGS = {
    "batch": (int, "batchnorm: trace batch K after training on batches 0..K (0: the tutorial's tensor)"),
    "momentum": (float, "batchnorm: running-statistics momentum (default 0.1)"),
    "gamma": (float, "batchnorm: the scale (default 1)"),
    "beta": (float, "batchnorm: the shift (default 0)"),
    "x": (float, "residual: the slider's input (default 2.0)"),
    "weights": (str, "residual: w1,b1,w2,b2 of F(x) = w2 * ReLU(w1 * x + b1) + b2 (default 1,-0.5,1,-0.4)"),
    "depth": (int, "residual: blocks stacked for the deep gradient (default 10)"),
    "channels": (int, "bottleneck: block width (default 256)"),
    "size": (int, "bottleneck: feature-map side for shapes and MACs (default 56)"),
    "input": (str, "conv: input HxW, e.g. 5x5 (default)"),
    "kernel": (int, "conv: kernel side (default 3)"),
    "stride": (int, "conv: stride (default 1)"),
    "padding": (int, "conv: zero padding (default 0)"),
    "seed": (int, "conv: seed of the integer input and kernel (default 0)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="batchnorm, residual, bottleneck or conv")
    for dest, (kind, text) in FLAGS.items():
        parser.add_argument(f"--{dest}", type=kind, help=text)
    parser.add_argument("--json", action="store_true", help="print the same data as JSON instead of a table")


def run(args: argparse.Namespace, console) -> None:
    from rich.table import Table

    from cnnlab.traces import trace, trace_options
    from cnnlab.traces.common import format_cell

    valid = trace_options(args.name)  # an unknown name fails here, listing the traces
    given = {dest: getattr(args, dest) for dest in FLAGS if getattr(args, dest) is not None}
    for dest in given:
        if dest not in valid:
            flags = ", ".join(f"--{option}" for option in valid)
            raise CnnlabError(f"--{dest} does not apply to trace {args.name}; its options: {flags}")
    result = trace(args.name, **given)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    table = Table(*result["columns"], title=result["title"])
    for column in table.columns:
        column.overflow = "fold"  # a narrow terminal wraps a long number, never cuts it
    for row in result["rows"]:
        table.add_row(*(format_cell(value) for value in row))
    console.print(table)
    for note in result["notes"]:
        console.print(f"- {note}", highlight=False)
