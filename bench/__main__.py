"""python -m bench [NAME ...] [--quick]: run the named benchmarks (default: all) and print their tables."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("train_throughput", "inference", "int8", "time_to_accuracy", "tricks", "lab_latency")

parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
parser.add_argument("--quick", action="store_true", help="smaller workloads and fewer repeats: a smoke run")
args = parser.parse_args()
for name in args.names or BENCHMARKS:
    print(f"== {name}", flush=True)
    importlib.import_module(f"bench.{name}").main(quick=args.quick)
