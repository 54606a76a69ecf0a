"""The `cnnlab` command. Each subcommand parses its flags and calls the matching Python API function.

User errors (CnnlabError, bad flags) print one line on stderr and exit with code 2, without a traceback.
A training run stopped by Ctrl-C or SIGTERM saves a checkpoint, prints how to resume and exits with 128 + the
signal's number (130 or 143), as a shell expects of a program stopped by a signal.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from cnnlab.errors import CnnlabError
from cnnlab.repeats import add_seed_flags
from cnnlab.training import config as recipe

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


# Flag types for the commands' own numbers, with the rules TrainConfig's fields use.
positive_int = flag_type(functools.partial(recipe.parse_number, kind=int, check=recipe.positive_int), "int")
positive_float = flag_type(functools.partial(recipe.parse_number, kind=float, check=recipe.positive), "float")


def option_help(option) -> str:
    """The option's help with its default, read from the dataclass ('%' escaped for argparse)."""
    if option.default is not None and option.type is bool:
        default = f" (default: {'on' if option.default else 'off'})"
    elif option.per_dataset and option.default is None:
        default = " (default: the dataset's)"
    elif option.default is not None and option.default != {}:
        default = f" (default: {option.default})"
    else:
        default = ""
    return (option.help + default).replace("%", "%%")


def add_config_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The TrainConfig options `command` takes, generated from the field metadata in training/config.py, in one
    help section per group. Every flag defaults to None, "not given", so only given flags reach the options."""
    sections: dict[str, argparse._ArgumentGroup] = {}
    for option in recipe.options():
        if command not in option.commands:
            continue
        if option.group not in sections:
            sections[option.group] = parser.add_argument_group(f"{option.group} options")
        if option.type is bool:
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            choices = "{" + ",".join(option.choices) + "}" if option.choices else None
            kind = {"type": flag_type(option.parse, option.type.__name__), "metavar": option.metavar or choices}
        help = option_help(option)
        sections[option.group].add_argument(option.flag, dest=option.name, default=None, help=help, **kind)


def add_command_flags(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Flags of the command rather than of the recipe."""
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="replace what --out already holds")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


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


def add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a model on a dataset")
    train.add_argument("model", help=recipe.option_named("model").help)
    add_config_flags(train, "train")
    add_command_flags(train, recipe.option_named("out").help + "; not with --resume")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its last checkpoint; flags given with it must equal the run's own, "
        "except those that may change (device, threads, data dir, checkpointing, compile) and a "
        "larger --epochs with --schedule constant",
    )
    add_seed_flags(train)


def add_compare_parser(commands) -> None:
    compare = commands.add_parser("compare", help="train several models with one recipe and compare them")
    compare.add_argument("models", nargs="+")
    add_config_flags(compare, "compare")
    add_command_flags(compare, "output folder, one run folder per model in it (default runs/compare-<dataset>-<time>)")
    add_seed_flags(compare)


def add_finetune_parser(commands) -> None:
    finetune = commands.add_parser(
        "finetune", help="fine-tune a trained run or a torchvision weights file on a dataset"
    )
    finetune.add_argument(
        "source",
        metavar="RUN_DIR_OR_WEIGHTS",
        help="a cnnlab run directory, or a torchvision .pth/.pt (read weights-only) or .safetensors file",
    )
    add_config_flags(finetune, "finetune")
    add_command_flags(finetune, recipe.option_named("out").help)
    finetune.add_argument("--model", help="the architecture in a weights file (default: read from its file name)")
    finetune.add_argument("--freeze", default="none", help="backbone (a linear probe, or LoRA only) or none")
    finetune.add_argument("--head-lr", type=positive_float, help="peak lr of the new head (default: the dataset's lr)")
    finetune.add_argument("--backbone-lr", type=positive_float, help="peak lr of the backbone (default: head lr / 10)")
    finetune.add_argument(
        "--lora-rank", type=positive_int, help="wrap the backbone's convs in LoRA adapters of this rank"
    )
    finetune.add_argument("--lora-alpha", type=positive_float, help="LoRA scale numerator (default: the rank, scale 1)")
    finetune.add_argument(
        "--keep-head",
        action="store_true",
        help="continue with the source's trained head (same class count) instead of a new one: "
        "phase 2 of head-first, then-unfreeze fine-tuning",
    )


def add_speedrun_parser(commands) -> None:
    speedrun = commands.add_parser(
        "speedrun",
        help="the best model we have measured for a dataset, a wall-time "
        "budget and this CPU, trained inside the budget (docs/performance.md)",
    )
    speedrun.add_argument(
        "--dataset", required=True, help="fashion-mnist, digits, mnist, kmnist, cifar10, cifar100 or imagefolder:PATH"
    )
    speedrun.add_argument(
        "--budget",
        required=True,
        type=flag_type(recipe.parse_duration, "duration"),
        metavar="DURATION",
        help="wall time per seed, whole command included: 30s, 10m, 1.5h",
    )
    speedrun.add_argument("--seeds", default="0", help="comma-separated seeds, one run each (default 0)")
    speedrun.add_argument("--data-dir", help="where to look for the dataset's files first")
    add_command_flags(speedrun, "output folder, one run folder per seed in it (default runs/speedrun-<dataset>-<time>)")


def add_runs_parser(commands) -> None:
    runs = commands.add_parser("runs", help="list past runs (their results.json) as a table, best first")
    runs.add_argument("root", nargs="?", default="runs", help="folder searched for results.json files (default runs)")
    runs.add_argument("--dataset", help="only runs on this dataset")
    runs.add_argument(
        "--sort",
        default="test_accuracy",
        help="a results.json number (default test_accuracy); losses, times and sizes sort ascending",
    )


def add_experiment_parser(commands) -> None:
    """`cnnlab experiment`: its options are the experiments' own (ExperimentOptions), not a training recipe."""
    experiment = commands.add_parser(
        "experiment", help="rerun one of the tutorials' claims: a table, plots and findings"
    )
    experiment.add_argument("name", help="compare, batchnorm, kernels, scaling, ... (a wrong name lists the closest)")
    experiment.add_argument("--dataset", help="default: digits with --quick, else fashion-mnist")
    experiment.add_argument("--data-dir", help="where to look for the dataset's files first")
    experiment.add_argument("--epochs", type=positive_int, help="default: the experiment's own for the mode")
    experiment.add_argument("--quick", action="store_true", help="the seconds-long variant: small subsets, 1-2 epochs")
    experiment.add_argument("--out", help="output directory (default runs/experiment-NAME-<time>)")
    experiment.add_argument("--seed", type=int, default=0)
    add_seed_flags(experiment)
    experiment.add_argument(
        "--models",
        "--model",
        dest="models",
        metavar="NAMES",
        help="degradation: plain/residual twins, e.g. plain18,resnet18,plain34,resnet34; "
        "drop-block: the pretrained ResNet (with --weights)",
    )
    experiment.add_argument(
        "--weights", metavar="PATH", help="drop-block: a torchvision ImageNet checkpoint for --model"
    )


def add_eval_parser(commands) -> None:
    """`cnnlab eval`: a run's test accuracy, or an ImageNet checkpoint on a labelled folder."""
    evaluate = commands.add_parser(
        "eval",
        help="test accuracy, per-class accuracy and a confusion matrix of a run; "
        "or top-1/top-5 of an ImageNet checkpoint on a labelled folder",
    )
    evaluate.add_argument("run_dir", nargs="?", help="a run directory (leave out with --model and --weights)")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each image's logits with its mirror's (default: as the run was trained)",
    )
    evaluate.add_argument("--model", help="with --weights: the architecture of a torchvision ImageNet checkpoint")
    evaluate.add_argument("--weights", metavar="PATH", help="a torchvision ImageNet checkpoint (.pth or .safetensors)")
    evaluate.add_argument(
        "--dataset",
        metavar="imagefolder:PATH",
        help="with --model: class folders named by WordNet id (n01440764) or ImageNet class name",
    )
    evaluate.add_argument("--json", action="store_true", help="with --model: print the result as JSON")


def add_predict_parser(commands) -> None:
    """`cnnlab predict`: top-k classes of image files."""
    predict = commands.add_parser("predict", help="top-k classes of image files, from a run or an ImageNet checkpoint")
    predict.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory; with --model and --weights, the first image"
    )
    predict.add_argument("images", nargs="*", metavar="IMAGE")
    predict.add_argument("--top-k", type=positive_int, default=5)
    predict.add_argument(
        "--model", help="with --weights: the architecture of a torchvision ImageNet checkpoint, e.g. resnet50"
    )
    predict.add_argument(
        "--weights", metavar="PATH", help="a torchvision ImageNet checkpoint you downloaded (.pth or .safetensors)"
    )
    predict.add_argument(
        "--runtime",
        default="torch",
        help="torch (default) or onnxruntime: run RUN_DIR/model.onnx, "
        "exported first (BN folded) when missing or older than the weights",
    )


def add_export_parser(commands) -> None:
    """`cnnlab export`: ONNX or TorchScript with a sidecar."""
    export = commands.add_parser(
        "export", help="write a run's model as ONNX or TorchScript (dynamic batch) plus a JSON sidecar"
    )
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, help="onnx or torchscript")
    export.add_argument(
        "--optimize", action="store_true", help="fold BatchNorm into the convs first (outputs stay equal)"
    )
    export.add_argument("--out", help="output file (default RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt)")


def add_models_parser(commands) -> None:
    """`cnnlab models`: the zoo as a table, JSON or CSV, and the evolution chart."""
    models = commands.add_parser("models", help="list the model zoo")
    models.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    models.add_argument("--format", default="table", help="table (default), json or csv (every field, raw numbers)")
    models.add_argument(
        "--plot", metavar="PNG", help="also draw the evolution chart (year against ImageNet top-1) here"
    )


def add_trace_parser(commands) -> None:
    """`cnnlab trace`: the tutorials' traces."""
    from cnnlab.traces.command import add_arguments as add_trace_arguments  # plain argparse, no torch

    add_trace_arguments(
        commands.add_parser("trace", help="the tutorials' step-by-step traces: batchnorm, residual, bottleneck, conv")
    )


def add_summary_parser(commands) -> None:
    """`cnnlab summary`: per-layer shapes, params, MACs and receptive fields."""
    summary = commands.add_parser("summary", help="per-layer shapes, params and MACs of a model or a layer spec")
    summary.add_argument("model", help='a model name, or a layer spec such as "conv 64 k7 s2 p3; maxpool k3 s2 p1"')
    summary.add_argument("--input", help="input shape CxHxW (default: the model's own)")


def add_visualize_parser(commands) -> None:
    """`cnnlab visualize`: filters, feature maps, Grad-CAM and saliency PNGs."""
    from cnnlab.visualization.command import add_arguments as add_visualize_arguments  # plain argparse, no torch

    add_visualize_arguments(
        commands.add_parser(
            "visualize", help="PNGs of a run's filters, feature maps, Grad-CAM and saliency (or --model/--weights)"
        ),
        positive_int,
    )


def add_lab_parser(commands) -> None:
    """`cnnlab lab`: the local web app."""
    lab = commands.add_parser("lab", help="the local web app: zoo, training with live curves, runs, inspect, widgets")
    lab.add_argument("--runs", default="runs", help="the runs folder it reads and trains into (default runs)")
    lab.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default loopback; any other needs the token)"
    )
    lab.add_argument("--port", type=positive_int, default=8000)
    lab.add_argument("--open", action="store_true", help="open the lab in the default browser")
    lab.add_argument(
        "--no-token",
        dest="token",
        action="store_false",
        help="serve without the token (loopback only): for a single-user machine, since on a shared one every "
        "user can reach 127.0.0.1",
    )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cnnlab", description="Classic CNN architectures: a verified zoo, a fast trainer, the papers' experiments."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for add in (
        add_train_parser,
        add_runs_parser,
        add_eval_parser,
        add_predict_parser,
        add_export_parser,
        add_compare_parser,
        add_finetune_parser,
        add_speedrun_parser,
        add_models_parser,
        add_experiment_parser,
        add_trace_parser,
        add_summary_parser,
        add_visualize_parser,
        add_lab_parser,
    ):
        add(commands)
    return parser


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import train
    from cnnlab.reporting import rich_table
    from cnnlab.training import seeds
    from cnnlab.training.distributed import rank

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
    from cnnlab.reporting import rich_table
    from cnnlab.training.comparison import HEADERS, SEED_HEADERS, compare, format_row, seed_row, seed_summary
    from cnnlab.training.distributed import rank

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
    from cnnlab.training.finetune import finetune

    options = recipe_options(args)  # finetune refuses those that cannot apply to it (e.g. --small-input)
    lr = options.pop("lr", None)  # on finetune, --lr is the new head's
    if lr is not None and args.head_lr is not None:
        raise CnnlabError("--lr and --head-lr both set the new head's learning rate: pass one of them")
    results = finetune(
        args.source,
        freeze=args.freeze,
        head_lr=args.head_lr or lr,
        backbone_lr=args.backbone_lr,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        model_name=args.model,
        keep_head=args.keep_head,
        overwrite=args.overwrite,
        quiet=args.quiet,
        **options,
    )
    console.print(
        f"{results['model']} fine-tuned on {results['dataset']} ({results['trainable_params']:,} trainable "
        f"parameters): test accuracy {results['test_accuracy']:.2%}; wrote {results['run_dir']}",
        highlight=False,
    )


def cmd_speedrun(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.repeats import parse_seeds
    from cnnlab.training.speedrun import speedrun, summary_lines

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
    from cnnlab.training.leaderboard import HEADERS, list_runs, table_columns, table_row

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


def cmd_eval(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.inference.prediction import evaluate

    if args.model or args.weights or args.dataset or args.json:
        cmd_eval_imagenet(args, console)
        return
    if not args.run_dir:
        raise CnnlabError("give a run directory, or --model, --weights and --dataset for an ImageNet checkpoint")
    result = evaluate(args.run_dir, args.data_dir, tta=args.tta)
    flips = " with test-time flips" if result["tta"] else ""
    table = Table(
        "class",
        "accuracy",
        title=f"{result['model']} on {result['dataset']}: test accuracy {result['test_accuracy']:.2%}{flips}",
    )
    for name, accuracy in result["per_class_accuracy"].items():
        table.add_row(name, f"{accuracy:.2%}")
    console.print(table)
    console.print(f"confusion matrix: {result['confusion_png']}", highlight=False)


def cmd_predict(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import predict

    if args.model or args.weights:  # an ImageNet checkpoint: every positional argument is an image
        results = predict(
            images=[args.run_dir, *args.images],
            top_k=args.top_k,
            model=args.model,
            weights=args.weights,
            runtime=args.runtime,
        )
        used = results[0]["preprocessing"]
        console.print(
            f"{args.model} with {args.weights}, preprocessed as torchvision's {used['weights']}: resize "
            f"{used['resize'][0]}, center-crop {used['crop'][0]}, mean {used['mean']}, std {used['std']}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        results = predict(args.run_dir, args.images, args.top_k, runtime=args.runtime)
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
    from cnnlab.measure import parse_input_shape, summarize, summary_table
    from cnnlab.registry import list_models, model_info

    spec = args.model
    if spec in list_models() or not any(ch in spec for ch in " ;"):
        info = model_info(spec)  # an unknown name fails here with the closest names
        shape = parse_input_shape(args.input) if args.input else info.input_size
        target = spec  # summarize builds it for this input and turns a size mismatch into a one-line error
    else:
        shape = parse_input_shape(args.input or "3x32x32")
        target = spec
    console.print(summary_table(summarize(target, shape)))


def cmd_trace(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.traces.command import run

    run(args, console)


def cmd_visualize(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.visualization.command import run

    for path in run(args):
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def cmd_lab(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.lab.server import serve

    serve(args.runs, host=args.host, port=args.port, open_browser=args.open, token=args.token)


# The commands torchrun may start several times: they train through the trainer, which splits each batch across
# the processes and lets process 0 alone write. The others would run N copies writing the same files.
DISTRIBUTED_COMMANDS = ("train", "compare")


def check_single_process(command: str) -> None:
    from cnnlab.training.distributed import environment

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
