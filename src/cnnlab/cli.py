"""The `cnnlab` command. Each subcommand parses its flags and calls the matching Python API function.

User errors (CnnlabError, bad flags) print one line on stderr and exit with code 2, without a traceback.
A training run stopped by Ctrl-C or SIGTERM saves a checkpoint, prints how to resume and exits with 128 + the
signal's number (130 or 143), as a shell expects of a program stopped by a signal.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from rich.console import Console
from rich.table import Table

from cnnlab.engine import config as recipe
from cnnlab.errors import CnnlabError
from cnnlab.options import Command, Option
from cnnlab.options.commands import commands as declared_commands

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (argparse prints the usage block too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CnnlabError(f"{self.prog}: {message} (see {self.prog} --help)")


def flag_type(parse, name: str):
    """An argparse `type` from a parser raising CnnlabError: argparse then names the flag in the one-line error."""

    def convert(text: str):
        try:
            return parse(text)
        except CnnlabError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = name
    return convert


def add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    """One declared option as an argument of `parser` (or of one of its help sections)."""
    kind: dict = {"help": option.cli_help}
    if option.positional:
        names = [option.name]
        kind |= {"nargs": option.nargs, "metavar": option.metavar}
        if option.nargs == "?":
            kind["default"] = option.default
    else:
        names = [option.flag, *option.aliases]
        kind |= {"dest": option.name, "default": option.cli_default}
        if option.required:
            kind["required"] = True
    if option.type is bool and option.negatable:
        kind["action"] = argparse.BooleanOptionalAction
    elif option.type is bool:  # a switch: --x turns it on, or --no-x (default on) turns it off
        kind["action"] = "store_false" if option.default else "store_true"
    elif option.type is list and not option.positional:
        kind |= {"action": "extend", "nargs": option.nargs, "metavar": option.metavar}
    elif option.type is not list:
        choices = "{" + ",".join(option.choices) + "}" if option.choices else None
        kind["type"] = flag_type(option.parse, option.type.__name__)
        kind["metavar"] = option.metavar or choices
    parser.add_argument(*names, **{k: v for k, v in kind.items() if v is not None or k == "default"})


def add_command(commands, command: Command) -> None:
    """`command`'s subparser, generated from its declaration: the options without a group in the command's own
    section, the others (TrainConfig's) in one help section per group, in their declared order."""
    parser = commands.add_parser(
        command.name, help=command.help, epilog=command.epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sections: dict[str, Any] = {}  # group -> its help section (an argument group)
    for option in command.options:
        target = parser
        if option.group is not None:
            if option.group not in sections:
                sections[option.group] = parser.add_argument_group(f"{option.group} options")
            target = sections[option.group]
        add_option(target, option)


def recipe_options(args: argparse.Namespace) -> dict:
    """The TrainConfig options given on the command line (flags left out take the dataclass's or the dataset's
    defaults, or on --resume the run's own), plus --out."""
    given = {o.name: getattr(args, o.name, None) for o in recipe.options() if o.flag}
    given = {name: value for name, value in given.items() if value is not None}
    if getattr(args, "out", None) is not None:
        given["out"] = args.out
    return given


def seed_options(args: argparse.Namespace) -> dict:
    """--seeds and --repeats, where given (a command without them passes nothing new to the API)."""
    return {name: getattr(args, name) for name in ("seeds", "repeats") if getattr(args, name, None) is not None}


def build_parser() -> ArgumentParser:
    """`cnnlab` and one subparser per declared command (cnnlab.options.commands)."""
    parser = ArgumentParser(
        prog="cnnlab", description="Classic CNN architectures: a verified zoo, a fast trainer, the papers' experiments."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for command in declared_commands().values():
        add_command(subparsers, command)
    return parser


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import train
    from cnnlab.engine.distributed import rank
    from cnnlab.reporting import rich_table
    from cnnlab.workflows import seeds

    # Every given flag reaches the API, which refuses what cannot apply (see resume_config); none is dropped here.
    result = train(
        args.model,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        **seed_options(args),
        **recipe_options(args),
    )
    if seed_options(args) and rank() == 0:  # several seeds: their mean ± std, as seeds.md has it
        headers, rows = seeds.table(result)
        console.print(rich_table(headers, rows, title=seeds.title(result)))
        console.print(f"wrote {result['out']}/seed-N, seeds.md, seeds.json and seeds.png", highlight=False)


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.engine.distributed import rank
    from cnnlab.reporting import rich_table
    from cnnlab.workflows.comparison import HEADERS, SEED_HEADERS, compare, format_row, seed_row, seed_summary

    rows = compare(
        args.models, overwrite=args.overwrite, quiet=args.quiet, **seed_options(args), **recipe_options(args)
    )
    if rank() != 0:  # under torchrun, process 0 speaks for all
        return
    first = rows[0]
    title = (
        f"{first['dataset']}: {first['epochs']} epochs, batch {first['batch_size']}, "
        f"{first['optimizer']} lr {first['lr']:g}"
    )
    if seed_options(args):  # one row per model, merged over the seeds
        console.print(rich_table(SEED_HEADERS, [seed_row(row) for row in rows], title=title))
        for line in seed_summary(rows):
            console.print(line, highlight=False)
        console.print(f"wrote {first['out']}/results.md, results.csv, compare.png and seed-N/", highlight=False)
        return
    console.print(rich_table(HEADERS, [format_row(row) for row in rows], title=title))
    out = rows[0]["run_dir"].rsplit("/", 1)[0]
    console.print(f"wrote {out}/results.md, results.csv and compare.png", highlight=False)


def cmd_finetune(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.workflows.finetune import Recipe, finetune

    options = recipe_options(args)  # finetune refuses those that cannot apply to it (e.g. --small-input)
    lr = options.pop("lr", None)  # on finetune, --lr is the new head's
    if lr is not None and args.head_lr is not None:
        raise CnnlabError("--lr and --head-lr both set the new head's learning rate: pass one of them")
    own = {f.name: getattr(args, "model" if f.name == "model_name" else f.name) for f in fields(Recipe)}
    own["head_lr"] = args.head_lr or lr
    if lr is not None and args.phases is not None:
        raise CnnlabError("--lr does not combine with --phases: each phase sets its own")
    results = finetune(args.source, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, **own, **options)
    console.print(
        f"{results['model']} fine-tuned on {results['dataset']} ({results['trainable_params']:,} trainable "
        f"parameters{', first phase' if results.get('phases') else ''}): test accuracy "
        f"{results['test_accuracy']:.2%}; wrote {results['run_dir']}",
        highlight=False,
    )


def cmd_lr_find(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.lrfind import lr_find

    options = recipe_options(args)
    found = lr_find(
        args.model,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        overwrite=args.overwrite,
        quiet=args.quiet,
        **options,
    )
    ended = "diverged" if found["diverged"] else "reached the end of the range"
    console.print(
        f"suggested lr {found['suggestion']:.3g} ({found['rule']}: {found['rule_text']}); the loss {ended} after "
        f"{found['steps_run']} steps; wrote {found['out']}/lr-find.json and lr-find.png",
        highlight=False,
        soft_wrap=True,
    )


def cmd_sweep(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.sweeps import sweep

    options = recipe_options(args)
    result = sweep(
        args.model,
        param=args.param,
        trials=args.trials,
        pruner=args.pruner,
        study=args.study,
        storage=args.storage,
        seeds=args.seeds,
        quiet=args.quiet,
        **options,
    )
    console.print(
        f"study {result['study']}: {result['complete']} complete, {result['pruned']} pruned, {result['failed']} "
        f"failed; wrote {result['out']}/sweep.md and sweep.csv",
        highlight=False,
        soft_wrap=True,
    )
    if result["best_command"]:
        console.print(f"best (val accuracy {result['best_value']:.4f}): {result['best_command']}", soft_wrap=True)


def cmd_speedrun(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.repeats import parse_seeds
    from cnnlab.workflows.speedrun import speedrun, summary_lines

    record = speedrun(
        args.dataset,
        args.budget,
        parse_seeds(args.seeds),
        out=args.out,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    for line in summary_lines(record):
        console.print(line, highlight=False, soft_wrap=True)


def cmd_experiment(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.experiments import get_experiment, run_experiment
    from cnnlab.experiments.common import spread_cell
    from cnnlab.reporting import format_number, rich_table

    get_experiment(args.name)  # an unknown name fails before anything runs
    result = run_experiment(
        args.name,
        dataset=args.dataset,
        epochs=args.epochs,
        quick=args.quick,
        out=args.out,
        seed=args.seed,
        data_dir=args.data_dir,
        models=args.models,
        weights=args.weights,
        seeds=args.seeds,
        repeats=args.repeats,
    )
    cells = [[format_number(spread_cell(column, row.get(column))) for column in result.columns] for row in result.rows]
    console.print(rich_table(result.columns, cells, title=result.title))
    for finding in result.findings:
        console.print(finding, highlight=False)
    console.print(
        f"wrote {result.config['out']}/results.md, results.csv, config.json and {', '.join(result.plots)}",
        highlight=False,
    )


def cmd_runs(args: argparse.Namespace, console: Console) -> None:
    from pathlib import Path

    from cnnlab.reporting import rich_table
    from cnnlab.workflows.leaderboard import HEADERS, list_runs, table_columns, table_row

    found = list_runs(args.root, dataset=args.dataset, sort=args.sort)
    columns = table_columns(args.sort)
    where = f"{args.root} on {args.dataset}" if args.dataset else args.root
    title = f"{len(found)} run(s) under {where}, by {args.sort}"
    headers = [HEADERS.get(column, column) for column in columns]
    console.print(rich_table(headers, [table_row(row, columns, Path(args.root)) for row in found], title=title))


def cmd_eval_imagenet(args: argparse.Namespace, console: Console) -> None:
    """`cnnlab eval --model NAME --weights FILE --dataset imagefolder:PATH [--json]`."""
    import json

    from cnnlab.imagenet_eval import evaluate_imagenet_folder

    if args.run_dir or not (args.model and args.weights and args.dataset):
        raise CnnlabError(
            "an ImageNet checkpoint is evaluated with --model, --weights and --dataset imagefolder:PATH "
            "together, and no run directory"
        )
    if not args.dataset.startswith("imagefolder:"):
        raise CnnlabError(f"--dataset must be imagefolder:PATH (a labelled folder of photos), got {args.dataset}")
    result = evaluate_imagenet_folder(args.model, args.weights, args.dataset.removeprefix("imagefolder:"))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    used = result["preprocessing"]
    console.print(
        f"{args.model} with {args.weights} on {result['images']} images in {result['classes']} classes, "
        f"preprocessed as torchvision's {used['weights']}: top-1 {result['top1']:.2%}, top-5 "
        f"{result['top5']:.2%}",
        highlight=False,
        soft_wrap=True,
    )


def say_runtime(result: dict) -> None:
    """The runtime `--runtime` chose, one line on stderr: stdout stays the result (and valid JSON with --json)."""
    print(f"runtime: {result['runtime']} ({result['runtime_reason']})", file=sys.stderr)


def cmd_eval(args: argparse.Namespace, console: Console) -> None:
    import json

    from cnnlab.api import evaluate

    if args.model or args.weights or args.dataset or (args.json and not args.run_dir):
        cmd_eval_imagenet(args, console)
        return
    if not args.run_dir:
        raise CnnlabError("give a run directory, or --model, --weights and --dataset for an ImageNet checkpoint")
    result = evaluate(args.run_dir, args.data_dir, tta=args.tta, tta_shift=args.tta_shift, runtime=args.runtime)
    say_runtime(result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    shifts = f"{result['tta_shift']}-pixel shifts"
    views = [name for name, on in (("flips", result["tta"]), (shifts, result["tta_shift"])) if on]
    augmented = f" with test-time {' and '.join(views)}" if views else ""
    table = Table(
        "class",
        "accuracy",
        title=f"{result['model']} on {result['dataset']}: test accuracy {result['test_accuracy']:.2%}{augmented}",
    )
    for name, accuracy in result["per_class_accuracy"].items():
        table.add_row(name, f"{accuracy:.2%}")
    console.print(table)
    console.print(f"confusion matrix: {result['confusion_png']}", highlight=False)


def cmd_predict(args: argparse.Namespace, console: Console) -> None:
    import json

    from cnnlab.api import predict

    imagenet = bool(args.model or args.weights)  # an ImageNet checkpoint: every positional argument is an image
    if imagenet:
        results = predict(
            images=[args.run_dir, *args.images],
            top_k=args.top_k,
            model=args.model,
            weights=args.weights,
            runtime=args.runtime,
        )
    else:
        results = predict(args.run_dir, args.images, args.top_k, runtime=args.runtime)
        say_runtime(results[0])  # an ImageNet checkpoint has no choice: it runs in torch
    if args.json:
        print(json.dumps({**{k: results[0][k] for k in ("runtime", "runtime_reason")}, "predictions": results}))
        return
    if imagenet:
        used = results[0]["preprocessing"]
        console.print(
            f"{args.model} with {args.weights}, preprocessed as torchvision's {used['weights']}: resize "
            f"{used['resize'][0]}, center-crop {used['crop'][0]}, mean {used['mean']}, std {used['std']}",
            highlight=False,
            soft_wrap=True,
        )
    for item in results:
        console.print(item["image"], highlight=False)
        for rank, (name, probability) in enumerate(item["top"], start=1):
            console.print(f"  {rank}. {name:<20} {probability:7.2%}", highlight=False)


def cmd_export(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import export

    result = export(args.run_dir, args.format, optimize=args.optimize, out=args.out)
    folded = f", {result['folded_batchnorms']} BatchNorm layer(s) folded into convs" if args.optimize else ""
    console.print(
        f"wrote {result['path']} ({args.format}, dynamic batch{folded}) and {result['sidecar']}",
        highlight=False,
        soft_wrap=True,
    )


def cmd_models(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.models.zoo import FORMATS, catalog, render, timeline_plot

    if args.format not in FORMATS:  # before the zoo is measured
        raise CnnlabError(f"--format must be one of {', '.join(FORMATS)}, got '{args.format}'")
    rows = catalog(args.pattern)  # measured on the meta device: params, MACs, depth, receptive field
    output = render(rows, args.format, width=console.width)
    if args.format == "table":
        console.print(output)
    else:
        sys.stdout.write(output if output.endswith("\n") else output + "\n")
    if args.plot:
        print(f"wrote {timeline_plot(rows, args.plot)}", file=sys.stderr if args.format != "table" else sys.stdout)


def cmd_summary(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.measure import summarize, summary_table

    # summarize builds the model for this input and turns a size mismatch into a one-line error
    console.print(summary_table(summarize(args.model, args.input, args.num_classes, args.small_input)))


def cmd_trace(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.traces.command import run

    run(args, console)


def cmd_visualize(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.visualization.command import run

    for path in run(args):
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def cmd_lab(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.lab.server import serve

    serve(args.runs, host=args.host, port=args.port, open_browser=args.open, token=args.token, models=args.models)


# The commands torchrun may start several times: they train through the trainer, which splits each batch across
# the processes and lets process 0 alone write. The others would run N copies writing the same files.
DISTRIBUTED_COMMANDS = ("train", "compare")


def check_single_process(command: str) -> None:
    from cnnlab.engine.distributed import environment

    size = environment()[1]
    if size > 1 and command not in DISTRIBUTED_COMMANDS:
        raise CnnlabError(
            f"cnnlab {command} runs in one process, but torchrun started {size} (WORLD_SIZE={size}); "
            f"only {' and '.join('cnnlab ' + c for c in DISTRIBUTED_COMMANDS)} are distributed: "
            f"run it without torchrun"
        )


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "compare": cmd_compare,
    "models": cmd_models,
    "summary": cmd_summary,
    "experiment": cmd_experiment,
    "finetune": cmd_finetune,
    "lr-find": cmd_lr_find,
    "sweep": cmd_sweep,
    "runs": cmd_runs,
    "speedrun": cmd_speedrun,
    "export": cmd_export,
    "visualize": cmd_visualize,
    "trace": cmd_trace,
    "lab": cmd_lab,
}


def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one `cnnlab: warning:` line, without Python's source-line echo (warnings.showwarning's hook)."""
    print(f"cnnlab: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    try:
        args = build_parser().parse_args(argv)
        check_single_process(args.command)
        with warnings.catch_warnings():  # restores the hook and the filters when the command returns
            warnings.showwarning = print_warning
            from cnnlab.models import trust  # loads the models (torch): after parsing, so --help stays quick

            with trust.trusting(bool(getattr(args, "trust_code", False))):  # --trust-code, for all the command loads
                COMMANDS[args.command](args, console)
    except CnnlabError as error:
        code = getattr(error, "exit_code", EXIT_USAGE)  # a stopped training run: 128 + the signal's number
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line, always
        print(f"cnnlab: {'error: ' if code == EXIT_USAGE else ''}{message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
