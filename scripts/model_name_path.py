"""Follow a model's name through cnnlab: where it goes from `cnnlab.train`, and how often the path climbs back up.

    python scripts/model_name_path.py            # prints the stops, the files and the climbs; --json for the counts

A *stop* is a call into a cnnlab function that receives the model's name as an argument (the string itself, or a
config object holding it; with --with-network also the network built from it, whose `model_name` names it), in
call order. Each stop's module belongs to a layer, top to bottom:

    0 entry points     cnnlab.api, cnnlab.cli, cnnlab.lab
    1 workflows        commands that use the engine: finetune, speedrun, seeds, comparison, leaderboard, experiments
    2 engine          the training loop and what it owns: config, checkpoints, precision, distributed, resume
    3 shared           below training and inference: data, measure, inference, visualization, run directories
    4 models           cnnlab.models, cnnlab.registry

A *climb* is a stop whose layer is above (a smaller number than) the previous stop's: the name went down and came
back up, the seam issue #25 asks to close (acceptance: at most 3 climbs). The run trains lenet5 on 200 digits for
one epoch in a temporary folder (seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import is_dataclass

import torch

MODEL = "lenet5"
# First match wins: module-name prefixes and their layer.
LAYERS = (
    (("cnnlab.api", "cnnlab.cli", "cnnlab.lab"), 0),
    (("cnnlab.workflows", "cnnlab.experiments"), 1),
    (("cnnlab.engine",), 2),
    (("cnnlab.models", "cnnlab.registry"), 4),
    (("cnnlab",), 3),  # shared: checkpoint, plots, batches, precision, building, data, measure, inference, rundir
)


def layer_of(module: str) -> int:
    return next(layer for prefixes, layer in LAYERS if module.startswith(prefixes))


FOLLOW_NETWORK = False  # --with-network: the module built from the name counts as carrying it too


def carries_name(value, depth: int = 0) -> bool:
    """Whether `value` is the model's name or an object (dataclass, dict, namespace) holding it one level down."""
    if isinstance(value, str):
        return value == MODEL
    if depth:
        return False
    if is_dataclass(value) and not isinstance(value, type):
        return any(carries_name(v, 1) for v in vars(value).values())
    if isinstance(value, dict):
        return any(carries_name(v, 1) for v in value.values())
    if isinstance(value, torch.nn.Module) and not FOLLOW_NETWORK:  # the network built from the name
        return False
    if hasattr(value, "__dict__") and type(value).__module__.startswith(("argparse", "cnnlab")):
        return any(carries_name(v, 1) for v in vars(value).values())
    return False


def trace_train() -> list[tuple[str, str, int]]:
    """(module, function, layer) for every stop while `cnnlab.train` runs."""
    import cnnlab

    stops: list[tuple[str, str, int]] = []

    def tracer(frame, event, arg):
        if event != "call":
            return None
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("cnnlab"):
            return None
        code = frame.f_code
        arguments = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]]
        if any(carries_name(a) for a in arguments):
            stops.append((module, code.co_name, layer_of(module)))
        return None

    with tempfile.TemporaryDirectory() as out:
        sys.settrace(tracer)
        try:
            cnnlab.train(MODEL, dataset="digits", epochs=1, train_subset=200, out=f"{out}/run", quiet=True)
        finally:
            sys.settrace(None)
    return stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--with-network", action="store_true", help="follow the network built from the name too")
    args = parser.parse_args()
    global FOLLOW_NETWORK
    FOLLOW_NETWORK = args.with_network
    stops = trace_train()
    climbs = sum(1 for before, after in zip(stops, stops[1:]) if after[2] < before[2])
    counts = {"stops": len(stops), "files": len({m for m, _, _ in stops}), "climbs": climbs}
    if args.json:
        print(json.dumps(counts))
        return
    for module, function, layer in stops:
        print(f"{layer} {'  ' * layer}{module}.{function}")
    print(f"{counts['stops']} stops in {counts['files']} modules, {climbs} climbs back up the layers")


if __name__ == "__main__":
    main()
