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

from rich.console import Console
from rich.table import Table

from cnnlab.errors import CnnlabError

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (argparse prints the usage block too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CnnlabError(f"{self.prog}: {message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """The training recipe, shared by `train` and `compare`. Unset flags take the dataset's defaults."""
    # None, not "digits": `--resume` must tell "not given" (take the run's) from an explicit, possibly different, one.
    parser.add_argument("--dataset", help="digits (offline default), mnist, fashion-mnist, kmnist, cifar10, cifar100, imagefolder:PATH")
    parser.add_argument("--data-dir", help="where to look for the dataset's files first")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--lr", type=positive_float, help="peak learning rate")
    parser.add_argument("--optimizer", help="sgd or adamw")
    parser.add_argument("--schedule", default="onecycle", help="onecycle, cosine, step or constant")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="random crop and flip (dataset default)")
    parser.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                        help="evaluate and save an exponential moving average of the weights, e.g. 0.999 per step")
    parser.add_argument("--tta", action="store_true", help="evaluate on the mean logits of each image and its mirror")
    parser.add_argument("--test-every-epoch", action="store_true",
                        help="also evaluate the test set after every epoch (learning curves; nothing is chosen on it)")
    parser.add_argument("--crop-padding", type=int, help="random-crop shift in pixels (default 2; 4 for CIFAR)")
    parser.add_argument("--train-subset", type=positive_int, help="keep only the first N training images")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="auto (bf16 where the CPU or GPU supports it), fp32, bf16 or fp16 (CUDA)")
    parser.add_argument("--threads", type=positive_int, help="torch threads (default: all available CPUs)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step's model (slow first steps)")
    parser.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                        help="CIFAR-style stem for ImageNet-style models (default: when the images are under 64 px)")
    parser.add_argument("--out", help="run directory (default runs/<model>-<dataset>-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def recipe_options(args: argparse.Namespace) -> dict:
    options = {name: getattr(args, name) for name in (
        "data_dir", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "label_smoothing", "ema",
        "augment", "crop_padding", "tta", "test_every_epoch", "train_subset", "val_fraction", "seed", "precision", "threads", "small_input", "compile")}
    if getattr(args, "checkpoint_every", None):
        options["checkpoint_every"] = args.checkpoint_every
    if getattr(args, "keep", None):
        options["keep_checkpoints"] = args.keep
    if getattr(args, "weights", None):
        options["weights"] = args.weights
    for name in ("device", "sync_bn", "tensorboard"):  # train's own flags
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    return options


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="cnnlab", description="Classic CNN architectures: a verified zoo, a fast trainer, the papers' experiments.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model on a dataset")
    train.add_argument("model")
    add_recipe_flags(train)
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS", help="also checkpoint every N steps")
    train.add_argument("--keep", type=positive_int, metavar="N", help="checkpoints to keep on disk (default 2)")
    train.add_argument("--weights", metavar="PATH",
                       help="start from a local weights file: torchvision .pth/.pt (read weights-only) or .safetensors")
    train.add_argument("--device", help="auto (default: CUDA, else MPS, else the CPU), cpu, cuda or mps; may change on --resume")
    train.add_argument("--sync-bn", action="store_true",
                       help="under torchrun: batch-norm statistics over the global batch (SyncBatchNorm, CUDA only)")
    train.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs to RUN_DIR/tensorboard")

    runs = commands.add_parser("runs", help="list past runs (their results.json) as a table, best first")
    runs.add_argument("root", nargs="?", default="runs", help="folder searched for results.json files (default runs)")
    runs.add_argument("--dataset", help="only runs on this dataset")
    runs.add_argument("--sort", default="test_accuracy",
                      help="a results.json number (default test_accuracy); losses, times and sizes sort ascending")

    evaluate = commands.add_parser("eval", help="test accuracy, per-class accuracy and a confusion matrix of a run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                          help="average each image's logits with its mirror's (default: as the run was trained)")

    predict = commands.add_parser("predict", help="top-k classes of image files, from a run or an ImageNet checkpoint")
    predict.add_argument("run_dir", metavar="RUN_DIR", help="a run directory; with --model and --weights, the first image")
    predict.add_argument("images", nargs="*", metavar="IMAGE")
    predict.add_argument("--top-k", type=positive_int, default=5)
    predict.add_argument("--model", help="with --weights: the architecture of a torchvision ImageNet checkpoint, e.g. resnet50")
    predict.add_argument("--weights", metavar="PATH", help="a torchvision ImageNet checkpoint you downloaded (.pth or .safetensors)")

    export = commands.add_parser("export", help="write a run's model as ONNX or TorchScript (dynamic batch) plus a JSON sidecar")
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, help="onnx or torchscript")
    export.add_argument("--optimize", action="store_true", help="fold BatchNorm into the convs first (outputs stay equal)")
    export.add_argument("--out", help="output file (default RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt)")

    compare = commands.add_parser("compare", help="train several models with one recipe and compare them")
    compare.add_argument("models", nargs="+")
    add_recipe_flags(compare)

    finetune = commands.add_parser("finetune", help="fine-tune a trained run or a torchvision weights file on a dataset")
    finetune.add_argument("source", metavar="RUN_DIR_OR_WEIGHTS",
                          help="a cnnlab run directory, or a torchvision .pth/.pt (read weights-only) or .safetensors file")
    add_recipe_flags(finetune)
    finetune.add_argument("--model", help="the architecture in a weights file (default: read from its file name)")
    finetune.add_argument("--freeze", default="none", help="backbone (a linear probe, or LoRA only) or none")
    finetune.add_argument("--head-lr", type=positive_float, help="peak lr of the new head (default: the dataset's lr)")
    finetune.add_argument("--backbone-lr", type=positive_float, help="peak lr of the backbone (default: head lr / 10)")
    finetune.add_argument("--lora-rank", type=positive_int, help="wrap the backbone's convs in LoRA adapters of this rank")
    finetune.add_argument("--lora-alpha", type=positive_float, help="LoRA scale numerator (default: the rank, scale 1)")

    models = commands.add_parser("models", help="list the model zoo")
    models.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")

    experiment = commands.add_parser("experiment", help="rerun one of the tutorials' claims: a table, plots and findings")
    experiment.add_argument("name", help="compare, batchnorm, kernels, scaling, ... (a wrong name lists the closest)")
    experiment.add_argument("--dataset", help="default: digits with --quick, else fashion-mnist")
    experiment.add_argument("--data-dir", help="where to look for the dataset's files first")
    experiment.add_argument("--epochs", type=positive_int, help="default: the experiment's own for the mode")
    experiment.add_argument("--quick", action="store_true", help="the seconds-long variant: small subsets, 1-2 epochs")
    experiment.add_argument("--out", help="output directory (default runs/experiment-NAME-<time>)")
    experiment.add_argument("--seed", type=int, default=0)

    summary = commands.add_parser("summary", help="per-layer shapes, params and MACs of a model or a layer spec")
    summary.add_argument("model", help="a model name, or a layer spec such as \"conv 64 k7 s2 p3; maxpool k3 s2 p1\"")
    summary.add_argument("--input", help="input shape CxHxW (default: the model's own)")
    return parser


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import train

    options = recipe_options(args)
    if args.resume and args.weights:
        raise CnnlabError("--weights starts a new run; --resume continues from the run's own checkpoint: pass one of them")
    if args.resume:
        train(args.model, args.dataset, resume=args.resume, quiet=args.quiet, device=args.device)
        return
    train(args.model, args.dataset or "digits", out=args.out, overwrite=args.overwrite, quiet=args.quiet, **options)


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.training.compare import HEADERS, compare, format_row
    from cnnlab.training.distributed import rank

    args.dataset = args.dataset or "digits"
    rows = compare(args.models, args.dataset, out=args.out, overwrite=args.overwrite, quiet=args.quiet, **recipe_options(args))
    if rank() != 0:  # under torchrun, process 0 speaks for all
        return
    table = Table(*HEADERS, title=f"{args.dataset}: {rows[0]['epochs']} epochs, batch {rows[0]['batch_size']}, {rows[0]['optimizer']} lr {rows[0]['lr']:g}")
    for row in rows:
        table.add_row(*format_row(row))
    console.print(table)
    out = rows[0]["run_dir"].rsplit("/", 1)[0]
    console.print(f"wrote {out}/results.md, results.csv and compare.png", highlight=False)


def cmd_finetune(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.training.finetune import finetune

    options = recipe_options(args)
    options.pop("small_input")  # the architecture is the source's own
    lr = options.pop("lr")
    if lr is not None and args.head_lr is not None:
        raise CnnlabError("--lr and --head-lr both set the new head's learning rate: pass one of them")
    results = finetune(args.source, args.dataset or "digits", freeze=args.freeze, head_lr=args.head_lr or lr,
                       backbone_lr=args.backbone_lr, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                       model_name=args.model, out=args.out, overwrite=args.overwrite, quiet=args.quiet, **options)
    console.print(f"{results['model']} fine-tuned on {results['dataset']} ({results['trainable_params']:,} trainable "
                  f"parameters): test accuracy {results['test_accuracy']:.2%}; wrote {results['run_dir']}", highlight=False)


def cmd_experiment(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.experiments import get_experiment, run_experiment
    from cnnlab.experiments.common import format_cell

    get_experiment(args.name)  # an unknown name fails before anything runs
    result = run_experiment(args.name, dataset=args.dataset, epochs=args.epochs, quick=args.quick, out=args.out,
                            seed=args.seed, data_dir=args.data_dir)
    table = Table(*result.columns, title=result.title)
    for row in result.rows:
        table.add_row(*(format_cell(row.get(column)) for column in result.columns))
    console.print(table)
    for finding in result.findings:
        console.print(finding, highlight=False)
    console.print(f"wrote {result.config['out']}/results.md, results.csv, config.json and {', '.join(result.plots)}",
                  highlight=False)


def cmd_runs(args: argparse.Namespace, console: Console) -> None:
    from pathlib import Path

    from cnnlab.training.leaderboard import HEADERS, list_runs, table_columns, table_row

    found = list_runs(args.root, dataset=args.dataset, sort=args.sort)
    columns = table_columns(args.sort)
    table = Table(*(HEADERS.get(column, column) for column in columns),
                  title=f"{len(found)} run(s) under {args.root}{f' on {args.dataset}' if args.dataset else ''}, by {args.sort}")
    for row in found:
        table.add_row(*table_row(row, columns, Path(args.root)))
    console.print(table)


def cmd_eval(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.training.runs import evaluate

    result = evaluate(args.run_dir, args.data_dir, tta=args.tta)
    flips = " with test-time flips" if result["tta"] else ""
    table = Table("class", "accuracy", title=f"{result['model']} on {result['dataset']}: test accuracy {result['test_accuracy']:.2%}{flips}")
    for name, accuracy in result["per_class_accuracy"].items():
        table.add_row(name, f"{accuracy:.2%}")
    console.print(table)
    console.print(f"confusion matrix: {result['confusion_png']}", highlight=False)


def cmd_predict(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import predict

    if args.model or args.weights:  # an ImageNet checkpoint: every positional argument is an image
        results = predict(images=[args.run_dir, *args.images], top_k=args.top_k, model=args.model, weights=args.weights)
        used = results[0]["preprocessing"]
        console.print(f"{args.model} with {args.weights}, preprocessed as torchvision's {used['weights']}: resize "
                      f"{used['resize'][0]}, center-crop {used['crop'][0]}, mean {used['mean']}, std {used['std']}", highlight=False, soft_wrap=True)
    else:
        results = predict(args.run_dir, args.images, args.top_k)
    for item in results:
        console.print(item["image"], highlight=False)
        for rank, (name, probability) in enumerate(item["top"], start=1):
            console.print(f"  {rank}. {name:<20} {probability:7.2%}", highlight=False)


def cmd_export(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.api import export

    result = export(args.run_dir, args.format, optimize=args.optimize, out=args.out)
    folded = f", {result['folded_batchnorms']} BatchNorm layer(s) folded into convs" if args.optimize else ""
    console.print(f"wrote {result['path']} ({args.format}, dynamic batch{folded}) and {result['sidecar']}", highlight=False, soft_wrap=True)


def cmd_models(args: argparse.Namespace, console: Console) -> None:
    import torch

    from cnnlab.inspect import count_params
    from cnnlab.registry import create_model, list_models, model_info

    names = list_models(args.pattern)
    if not names:
        raise CnnlabError(f"no model matches '{args.pattern}' (try cnnlab models)")
    table = Table("name", "family", "year", "params", "default input", "key idea")
    for name in names:
        info = model_info(name)
        with torch.device("meta"):  # shapes only: counting parameters needs no memory or init time
            params = count_params(create_model(name))
        table.add_row(name, info.family, str(info.year), f"{params:,}", "x".join(map(str, info.input_size)), info.key_idea)
    console.print(table)


def cmd_summary(args: argparse.Namespace, console: Console) -> None:
    from cnnlab.inspect import parse_input_shape, summarize, summary_table
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


# The commands torchrun may start several times: they train through the trainer, which splits each batch across
# the processes and lets process 0 alone write. The others would run N copies writing the same files.
DISTRIBUTED_COMMANDS = ("train", "compare")


def check_single_process(command: str) -> None:
    from cnnlab.training.distributed import environment

    size = environment()[1]
    if size > 1 and command not in DISTRIBUTED_COMMANDS:
        raise CnnlabError(f"cnnlab {command} runs in one process, but torchrun started {size} (WORLD_SIZE={size}); "
                          f"only {' and '.join('cnnlab ' + c for c in DISTRIBUTED_COMMANDS)} are distributed: "
                          f"run it without torchrun")


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "compare": cmd_compare,
            "models": cmd_models, "summary": cmd_summary, "experiment": cmd_experiment, "finetune": cmd_finetune,
            "runs": cmd_runs, "export": cmd_export}


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
