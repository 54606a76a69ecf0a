"""`cnnlab trace NAME`: the table or JSON it prints (its flags are declared in cnnlab.options.commands)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.traces.running_stats import plot_running_stats

PLOTS = {"running_stats": plot_running_stats}  # the traces that draw a PNG with --plot


def run(args: argparse.Namespace, console) -> None:
    from rich.table import Table

    from cnnlab.options.commands import TRACE_FLAGS
    from cnnlab.traces import trace, trace_options
    from cnnlab.traces.common import format_cell

    valid = trace_options(args.name)  # an unknown name fails here, listing the traces
    # a flag is passed on only when given, and only to a trace that has that option
    given = {o.name: getattr(args, o.name) for o in TRACE_FLAGS if getattr(args, o.name) is not None}
    for dest in given:
        if dest not in valid:
            flags = ", ".join(f"--{option}" for option in valid)
            raise CnnlabError(f"--{dest} does not apply to trace {args.name}; its options: {flags}")
    if args.plot and args.name not in PLOTS:
        raise CnnlabError(f"--plot draws trace {', '.join(PLOTS)} only, not {args.name}")
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        raise CnnlabError(f"--plot {args.plot}: its folder does not exist")
    result = trace(args.name, **given)
    if args.plot:
        PLOTS[args.name](result, args.plot)
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
    if args.plot:
        console.print(f"wrote {args.plot}", highlight=False, soft_wrap=True)
