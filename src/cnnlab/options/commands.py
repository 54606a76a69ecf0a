"""Every `cnnlab` command's options, declared once: `COMMANDS` maps each command's name to its `Command`.

cli.py builds one subparser per entry, in this order, with the options' flags in their order here; the Python API
checks its keywords against the same entries (`command(name).check_keywords`), and the lab builds its forms and
request models from `train` and `experiment`. `train`, `compare` and `finetune` take TrainConfig's options
(declared with its fields in engine/config.py) plus their own.

Adding a command (the coming `sweep` and `lr-find` among them):
1. declare it here: `Command("lr-find", "one line for cnnlab --help", (Option(...), ...))`, and add it to
   `COMMANDS` where it should appear in `cnnlab --help`; reuse TrainConfig's options with `recipe_options(name)`
   after adding the name to their `commands` (engine/config.py: COMMANDS and each field's `commands=`);
2. write `cmd_<name>(args, console)` in cli.py and add it to `cli.COMMANDS`;
3. give its Python API function the same keywords, and call `command(name).check_keywords(kwargs)` where it
   takes `**options`.
Nothing else is edited by hand: the flags, --help, the keyword checks and (for a lab job) the request model follow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from cnnlab.engine import config as recipe
from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.inference.runtime import RUNTIMES
from cnnlab.options import (
    Command,
    Option,
    non_negative_int,
    parse_duration,
    parse_number,
    positive,
    positive_int,
)
from cnnlab.repeats import parse_seeds
from cnnlab.visualization.options import SHOWS


def parse_repeats(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise CnnlabError(f"--repeats takes a whole number from 1, got {text!r}")
    return int(text)


# ------------------------------------------------------------------------------------------------ shared options
SEEDS = Option(
    "seeds",
    flag="--seeds",
    parser=parse_seeds,
    metavar="0,1,2",
    help="one run per seed, each in OUT/seed-N; tables give mean ± std and n (an experiment reads back a seed "
    "folder it already finished with the same options)",
)
REPEATS = Option(
    "repeats",
    int,
    flag="--repeats",
    parser=parse_repeats,
    metavar="N",
    help="N runs with seeds SEED..SEED+N-1 (like --seeds)",
)
OVERWRITE = Option("overwrite", bool, False, "replace what --out already holds", flag="--overwrite")
QUIET = Option("quiet", bool, False, "no progress output", flag="--quiet")
RUNTIME = Option(
    "runtime",
    default=RUNTIMES[0],
    choices=RUNTIMES,
    flag="--runtime",
    help="auto (default): whichever of torch and onnxruntime is faster for this model, batch and CPU, measured "
    "once and cached; torch; or onnxruntime (RUN_DIR/model.onnx, exported first when missing or stale)",
)
TRUST_CODE = Option(
    "trust_code",
    bool,
    False,
    "run the network code a run holds (RUN/model_source.py) though you did not train it on this machine",
    flag="--trust-code",
)
IMAGENET_MODEL = "with --weights: the architecture of a torchvision ImageNet checkpoint"
IMAGENET_WEIGHTS = "a torchvision ImageNet checkpoint (.pth or .safetensors)"


def out(help: str) -> Option:
    return Option("out", help=help, flag="--out")


def run_flags(out_help: str) -> tuple[Option, ...]:
    """The flags of a command that trains, rather than of its recipe."""
    return out(out_help), OVERWRITE, QUIET


def recipe_options(command: str) -> tuple[Option, ...]:
    """TrainConfig's options that `command` takes as flags (engine/config.py declares them)."""
    return tuple(o for o in recipe.options() if command in o.commands)


# ------------------------------------------------------------------------------------------------------ training
def _train() -> Command:
    return Command(
        "train",
        "train a model on a dataset",
        (
            Option("model", help=recipe.option_named("model").help, positional=True),
            *recipe_options("train"),
            *run_flags(recipe.option_named("out").help + "; not with --resume"),
            Option(
                "resume",
                flag="--resume",
                metavar="RUN_DIR",
                help="continue a run from its last checkpoint; flags given with it must equal the run's own, "
                "except those that may change (device, threads, data dir, checkpointing, compile) and a "
                "larger --epochs with --schedule constant",
            ),
            SEEDS,
            REPEATS,
            TRUST_CODE,
        ),
        kind="training option",
    )


def _compare() -> Command:
    return Command(
        "compare",
        "train several models with one recipe and compare them",
        (
            Option("models", list, positional=True, nargs="+"),
            *recipe_options("compare"),
            *run_flags("output folder, one run folder per model in it (default runs/compare-<dataset>-<time>)"),
            SEEDS,
            REPEATS,
        ),
        kind="training option",
    )


# ------------------------------------------------------------------------------------------------ fine-tuning
PHASE_TRAINS = ("head", "all")  # what a fine-tuning phase trains: the new head on a frozen backbone, or everything
BN_STATS = ("frozen", "update")
PHASES_EXAMPLE = "head:3:adamw:1e-3,all:10:adamw:1e-5"


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of `--phases`: what trains (PHASE_TRAINS), for how many epochs, with which optimizer and lr."""

    trains: str
    epochs: int
    optimizer: str
    lr: float


def parse_phases(text: str) -> tuple[PhaseSpec, ...]:
    """ "head:3:adamw:1e-3,all:10:adamw:1e-5" -> two PhaseSpecs; CnnlabError (one line) for anything else."""
    phases = []
    for part in text.split(","):
        fields = [f.strip() for f in part.split(":")]
        problem = f"a phase is TRAINS:EPOCHS:OPTIMIZER:LR such as {PHASES_EXAMPLE.split(',')[0]}, got '{part}'"
        if len(fields) != 4:
            raise CnnlabError(problem)
        trains, epochs, optimizer, lr = fields
        if trains not in PHASE_TRAINS:
            raise CnnlabError(f"a phase trains {' or '.join(PHASE_TRAINS)}, got '{trains}' in '{part}'")
        if optimizer not in recipe.OPTIMIZERS:
            choices = f"{', '.join(recipe.OPTIMIZERS[:-1])} or {recipe.OPTIMIZERS[-1]}"
            raise CnnlabError(f"a phase's optimizer is {choices}, got '{optimizer}'")
        phases.append(
            PhaseSpec(
                trains, int(parse_number(epochs, int, positive_int)), optimizer, parse_number(lr, float, positive)
            )
        )
    return tuple(phases)


def phases_text(text: str) -> str:
    """`--phases`'s value, checked (`parse_phases`) and kept as text: the CLI, the lab and finetune.json alike."""
    parse_phases(text)
    return text


def _finetune() -> Command:
    own = (
        Option("model", help="the architecture in a weights file (default: read from its file name)", flag="--model"),
        Option(
            "freeze",
            default="none",
            choices=("none", "backbone"),
            help="backbone (a linear probe, or LoRA only) or none; with --phases each phase says what trains",
            flag="--freeze",
        ),
        Option(
            "head",
            default="last",
            metavar="last|linear|SPEC",
            help="last: a new final linear layer only (the source's hidden head layers kept, e.g. mobilenet_v3_small's "
            "576->1024 linear); linear: the WHOLE classifier replaced by one linear from the pooled features, as the "
            "tutorials do (576 -> classes: 5,770 parameters for 10); SPEC: layer-spec layers on the pooled features "
            "('fc 256; relu; dropout 0.2'), then a linear to the classes",
        ),
        Option(
            "phases",
            parser=phases_text,
            metavar="TRAINS:EPOCHS:OPT:LR,...",
            help=f"train in phases, in one run: '{PHASES_EXAMPLE}' trains the head alone (backbone frozen) 3 epochs "
            "at adamw 1e-3, then everything 10 epochs at 1e-5, each phase with a fresh optimizer and its own "
            "--schedule; replaces --epochs, --optimizer, --lr and --freeze. The tutorial's Adam is adamw with "
            "--weight-decay 0 (and its constant lr --schedule constant)",
        ),
        Option(
            "bn_stats",
            choices=BN_STATS,
            help="batch-norm statistics under a frozen backbone (--freeze backbone, or a head phase): frozen "
            "(default) normalises with the pretrained statistics and never changes them, so the head trains on fixed "
            "features; update lets every batch move them, as the tutorial's model.train() does",
        ),
        Option("head_lr", float, help="peak lr of the new head (default: the dataset's lr)", check=positive),
        Option("backbone_lr", float, help="peak lr of the backbone (default: head lr / 10)", check=positive),
        Option("lora_rank", int, help="wrap the backbone's convs in LoRA adapters of this rank", check=positive_int),
        Option("lora_alpha", float, help="LoRA scale numerator (default: the rank, scale 1)", check=positive),
        Option(
            "keep_head",
            bool,
            False,
            "continue with the source's trained head (same class count) instead of a new one (--phases does both "
            "phases of head-first, then-unfreeze fine-tuning in one run)",
        ),
        Option(
            "resume",
            metavar="RUN_DIR",
            help="continue an interrupted fine-tuning run from its last checkpoint (its source and recipe are in "
            "RUN_DIR/finetune.json; SOURCE may be left out), across a phase boundary too",
        ),
    )
    return Command(
        "finetune",
        "fine-tune a trained run or a torchvision weights file on a dataset",
        (
            Option(
                "source",
                metavar="RUN_DIR_OR_WEIGHTS",
                positional=True,
                nargs="?",
                help="a cnnlab run directory, or a torchvision .pth/.pt (read weights-only) or .safetensors file",
            ),
            *recipe_options("finetune"),
            *run_flags(recipe.option_named("out").help),
            TRUST_CODE,
            *(_flagged(o) for o in own),
        ),
        kind="training option",
        epilog=FINETUNE_TUTORIAL,
    )


FINETUNE_TUTORIAL = """\
the transfer-learning tutorial's recipe (MobileNetV3-Small, its whole classifier replaced by Linear(576, 10), the
head alone 3 epochs at Adam 1e-3, then everything 10 epochs at 1e-5), in one run:
  cnnlab finetune mobilenet_v3_small-047dcff4.pth --dataset imagefolder:PATH --image-size 224 --head linear \\
    --phases head:3:adamw:1e-3,all:10:adamw:1e-5 --bn-stats update --weight-decay 0 --schedule constant \\
    --no-augment --val-fraction 0 --precision fp32
what still differs from the tutorial's code:
  - Adam is AdamW at --weight-decay 0: the same update (cnnlab's default decay, 5e-4, is decoupled, not Adam's L2)
  - images are normalised with the dataset's own per-channel mean and std, not ImageNet's
  - the new head's initial weights are another random draw (the same nn.Linear initialisation)
  - --image-size resizes imagefolder images once, as they load; a built-in set (cifar10) keeps its own 32 px, so
    the network sees 32x32 inputs, not 32x32 resized to 224 (experiment transfer --weights resizes it)
  - the test split is evaluated once, at the end (--test-every-epoch: after every epoch too)
  - without the flags above: a onecycle schedule per phase, augmentation, a 10% validation hold-out, frozen BN
    statistics under the frozen backbone, and bf16 autocast where the CPU has it
(docs/experiments.md, transfer: the same recipe measured at 10, 100 and all labels, at 224 and 56 pixels)"""


def _flagged(option: Option) -> Option:
    """The option with its flag named after it (--head-lr for head_lr) where it declares none."""
    return option if option.flag else replace(option, flag="--" + option.name.replace("_", "-"))


def _speedrun() -> Command:
    return Command(
        "speedrun",
        "the best model we have measured for a dataset, a wall-time budget and this CPU, trained inside the budget "
        "(docs/performance.md)",
        (
            Option(
                "dataset",
                flag="--dataset",
                required=True,
                help="fashion-mnist, digits, mnist, kmnist, cifar10, cifar100 or imagefolder:PATH",
            ),
            Option(
                "budget",
                float,
                flag="--budget",
                required=True,
                parser=parse_duration,
                metavar="DURATION",
                help="wall time per seed, whole command included: 30s, 10m, 1.5h",
            ),
            # text here, parsed by the command: its refusal is a plain error, not argparse's
            Option("seeds", default="0", help="comma-separated seeds, one run each (default 0)", flag="--seeds"),
            Option("data_dir", help="where to look for the dataset's files first", flag="--data-dir"),
            *run_flags("output folder, one run folder per seed in it (default runs/speedrun-<dataset>-<time>)"),
        ),
    )


# --------------------------------------------------------------------------------------------------- experiments
# The options only some experiments read: an experiment names those it takes in `register_experiment(accepts=)`.
EXPERIMENT_EXTRAS = ("models", "weights")


def _experiment() -> Command:
    return Command(
        "experiment",
        "rerun one of the tutorials' claims: a table, plots and findings",
        (
            Option(
                "name",
                help="compare, batchnorm, kernels, scaling, ... (a wrong name lists the closest)",
                positional=True,
            ),
            Option("dataset", help="default: digits with --quick, else fashion-mnist", flag="--dataset"),
            Option("data_dir", help="where to look for the dataset's files first", flag="--data-dir"),
            Option(
                "epochs", int, help="default: the experiment's own for the mode", flag="--epochs", check=positive_int
            ),
            Option("quick", bool, False, "the seconds-long variant: small subsets, 1-2 epochs", flag="--quick"),
            out("output directory (default runs/experiment-NAME-<time>)"),
            Option("seed", int, 0, flag="--seed"),
            SEEDS,
            REPEATS,
            Option(
                "models",
                flag="--models",
                aliases=("--model",),
                metavar="NAMES",
                help="degradation: plain/residual twins, e.g. plain18,resnet18,plain34,resnet34, or your own "
                "networks in (plain, residual) pairs: nets.py:Plain,nets.py:Res or two layer specs (split on commas "
                "outside parentheses); lesion: the pretrained torchvision ResNet (with --weights), or your layer spec "
                "or FILE.py:Name, trained, then each residual block with an identity skip removed in turn (res(...) "
                "blocks; in code: cnnlab's or torchvision's BasicBlock/Bottleneck, or a class with lesionable = True)",
            ),
            Option(
                "weights",
                flag="--weights",
                metavar="PATH",
                help="lesion: a torchvision ImageNet checkpoint for --model; transfer: a torchvision "
                "mobilenet_v3_small state dict (.pth read weights-only, or .safetensors), fine-tuned as the tutorials "
                "do on --dataset (imagefolder:PATH), at 224px and at a quarter of that",
            ),
        ),
        kind="experiment option",
    )


def experiment_options(accepts: tuple[str, ...] = EXPERIMENT_EXTRAS) -> tuple[Option, ...]:
    """The keyword options of one experiment (its name aside): the common ones and the extras it `accepts`."""
    return tuple(
        o
        for o in command("experiment").options
        if not o.positional and (o.name not in EXPERIMENT_EXTRAS or o.name in accepts)
    )


# ----------------------------------------------------------------------------------------- using a trained model
def _eval() -> Command:
    return Command(
        "eval",
        "test accuracy, per-class accuracy and a confusion matrix of a run; "
        "or top-1/top-5 of an ImageNet checkpoint on a labelled folder",
        (
            Option(
                "run_dir", help="a run directory (leave out with --model and --weights)", positional=True, nargs="?"
            ),
            Option("data_dir", flag="--data-dir"),
            Option(
                "tta",
                bool,
                None,
                "average each image's logits with its mirror's (default: as the run was trained)",
                flag="--tta",
                negatable=True,
            ),
            Option(
                "tta_shift",
                int,
                None,
                "also classify each image moved this many pixels diagonally, both ways (test-time translations; "
                "default: as the run was trained, 0 = off)",
                flag="--tta-shift",
                metavar="PIXELS",
                check=non_negative_int,
            ),
            Option("model", help=IMAGENET_MODEL, flag="--model"),
            Option("weights", help=IMAGENET_WEIGHTS, flag="--weights", metavar="PATH"),
            Option(
                "dataset",
                help="with --model: class folders named by WordNet id (n01440764) or ImageNet class name",
                flag="--dataset",
                metavar="imagefolder:PATH",
            ),
            RUNTIME,
            Option("json", bool, False, "print the result as JSON", flag="--json"),
            TRUST_CODE,
        ),
    )


def _predict() -> Command:
    return Command(
        "predict",
        "top-k classes of image files, from a run or an ImageNet checkpoint",
        (
            Option(
                "run_dir",
                help="a run directory; with --model and --weights, the first image",
                positional=True,
                metavar="RUN_DIR",
            ),
            Option("images", list, positional=True, nargs="*", metavar="IMAGE"),
            Option("top_k", int, 5, flag="--top-k", check=positive_int),
            Option(
                "model",
                help="with --weights: the architecture of a torchvision ImageNet checkpoint, e.g. resnet50",
                flag="--model",
            ),
            Option(
                "weights",
                help="a torchvision ImageNet checkpoint you downloaded (.pth or .safetensors)",
                flag="--weights",
                metavar="PATH",
            ),
            RUNTIME,
            Option("json", bool, False, "print the predictions and the runtime as JSON", flag="--json"),
            TRUST_CODE,
        ),
    )


def _export() -> Command:
    return Command(
        "export",
        "write a run's model as ONNX or TorchScript (dynamic batch) plus a JSON sidecar",
        (
            Option("run_dir", positional=True),
            Option("format", help="onnx or torchscript", flag="--format", required=True),
            Option(
                "optimize", bool, False, "fold BatchNorm into the convs first (outputs stay equal)", flag="--optimize"
            ),
            out("output file (default RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt)"),
            TRUST_CODE,
        ),
    )


def _visualize() -> Command:
    return Command(
        "visualize",
        "PNGs of a run's filters, feature maps, Grad-CAM and saliency (or --model/--weights)",
        (
            Option(
                "source",
                help="a run directory; with --model and --weights, the first image",
                positional=True,
                metavar="RUN_DIR",
            ),
            Option("images", list, positional=True, nargs="*", metavar="IMAGE"),
            Option(
                "from_test",
                int,
                help="N seeded test images of the run's dataset",
                flag="--from-test",
                check=positive_int,
                metavar="N",
            ),
            Option(
                "misclassified", bool, False, "with --from-test: N images the model gets wrong", flag="--misclassified"
            ),
            Option(
                "show",
                help=f"comma-separated, from {','.join(SHOWS)} "
                "(default: all but erf with images, filters alone without)",
                flag="--show",
            ),
            Option(
                "layer",
                list,
                help="feature maps (and filters, for a conv) of this layer instead of the stages; repeatable",
                flag="--layer",
                nargs="+",
                metavar="NAME",
            ),
            Option(
                "target",
                int,
                help="the class index the maps explain (default: the prediction)",
                flag="--target",
                metavar="CLASS",
            ),
            out("output folder (default RUN_DIR/visualize)"),
            Option(
                "model",
                help="with --weights: the architecture of a torchvision ImageNet checkpoint; or your own network "
                "(a layer spec or FILE.py:Name), --weights optional (a state dict: else its random init)",
                flag="--model",
            ),
            Option("weights", help=IMAGENET_WEIGHTS, flag="--weights", metavar="PATH"),
            TRUST_CODE,
        ),
    )


# ------------------------------------------------------------------------------------------ looking things up
def _runs() -> Command:
    return Command(
        "runs",
        "list past runs (their results.json) as a table, best first",
        (
            Option(
                "root",
                default="runs",
                help="folder searched for results.json files (default runs)",
                positional=True,
                nargs="?",
            ),
            Option("dataset", help="only runs on this dataset", flag="--dataset"),
            Option(
                "sort",
                default="test_accuracy",
                help="a results.json number (default test_accuracy); losses, times and sizes sort ascending",
                flag="--sort",
            ),
        ),
    )


def _models() -> Command:
    return Command(
        "models",
        "list the model zoo",
        (
            Option("pattern", default="*", help="fnmatch pattern, e.g. 'resnet*'", positional=True, nargs="?"),
            Option(
                "format",
                default="table",
                help="table (default), json or csv (every field, raw numbers)",
                flag="--format",
            ),
            Option(
                "plot",
                help="also draw the evolution chart (year against ImageNet top-1) here",
                flag="--plot",
                metavar="PNG",
            ),
        ),
    )


# The trace flags: each is passed on only when given, and only to a trace that has that option.
TRACE_FLAGS = (
    Option("batch", int, help="batchnorm: trace batch K after training on batches 0..K (0: the tutorial's tensor)"),
    Option("momentum", float, help="batchnorm, running_stats: running-statistics momentum (default 0.1)"),
    Option("gamma", float, help="batchnorm: the scale (default 1)"),
    Option("beta", float, help="batchnorm: the shift (default 0)"),
    Option("x", float, help="residual: the slider's input (default 2.0)"),
    Option("weights", str, help="residual: w1,b1,w2,b2 of F(x) = w2 * ReLU(w1 * x + b1) + b2 (default 1,-0.5,1,-0.4)"),
    Option("depth", int, help="residual: blocks stacked for the deep gradient (default 10)"),
    Option("channels", int, help="bottleneck: block width (default 256)"),
    Option("size", int, help="bottleneck: feature-map side for shapes and MACs (default 56)"),
    Option("input", str, help="conv: input HxW, e.g. 5x5 (default)"),
    Option("kernel", int, help="conv: kernel side (default 3)"),
    Option("stride", int, help="conv: stride (default 1)"),
    Option("padding", int, help="conv: zero padding (default 0)"),
    Option(
        "seed", int, help="conv: seed of the integer input and kernel; running_stats: of the model and the batches (0)"
    ),
    Option("model", str, help="running_stats: the zoo model whose first conv feeds the BatchNorm (default lenet5)"),
    Option("dataset", str, help="running_stats: digits or fashion-mnist (default digits)"),
    Option("batches", int, help="running_stats: training batches fed, 1 to 100 (default 100)"),
    Option("batch_size", int, help="running_stats: images per batch (default 64)"),
)


def _trace() -> Command:
    return Command(
        "trace",
        "the tutorials' step-by-step traces: batchnorm, residual, bottleneck, conv, running_stats",
        (
            Option("name", help="batchnorm, residual, bottleneck, conv or running_stats", positional=True),
            *(_flagged(o) for o in TRACE_FLAGS),
            Option("json", bool, False, "print the same data as JSON instead of a table", flag="--json"),
            Option(
                "plot",
                help="running_stats: also draw the running estimates against the dataset's statistics here",
                flag="--plot",
                metavar="PNG",
            ),
        ),
    )


def _summary() -> Command:
    return Command(
        "summary",
        "per-layer shapes, params and MACs of a model or a layer spec",
        (
            Option(
                "model",
                help='a model name, or a layer spec such as "conv 64 k7 s2 p3; maxpool k3 s2 p1"',
                positional=True,
            ),
            Option("input", help="input shape CxHxW (default: the model's own)", flag="--input"),
            Option(
                "num_classes",
                int,
                help="a zoo model's classifier width, as train builds it (default: the model's own)",
                flag="--num-classes",
                check=positive_int,
                metavar="N",
            ),
            Option(
                "small_input",
                bool,
                False,
                "a zoo model with the CIFAR-style stem train gives it on small images (3x3 stride 1, no early pool)",
                flag="--small-input",
            ),
        ),
    )


def _lab() -> Command:
    return Command(
        "lab",
        "the local web app: zoo, training with live curves, runs, inspect, widgets",
        (
            Option(
                "runs", default="runs", help="the runs folder it reads and trains into (default runs)", flag="--runs"
            ),
            Option(
                "host",
                default="127.0.0.1",
                help="address to bind (default loopback; any other needs the token)",
                flag="--host",
            ),
            Option("port", int, 8000, flag="--port", check=positive_int),
            Option("open", bool, False, "open the lab in the default browser", flag="--open"),
            Option(
                "models",
                list,
                None,
                "Python files whose nn.Module classes and factories the lab offers as your own networks (Design "
                "and Train); the lab imports no other code",
                flag="--models",
                nargs="+",
                metavar="FILE.py",
            ),
            Option(
                "token",
                bool,
                True,
                "serve without the token (loopback only): for a single-user machine, since on a shared one every "
                "user can reach 127.0.0.1",
                flag="--no-token",
            ),
        ),
    )


# ------------------------------------------------------------------------------------- choosing hyperparameters
def _lr_find() -> Command:
    return Command(
        "lr-find",
        "Smith's lr range test: the loss over an exponentially rising lr, and a suggested lr (docs/sweeps.md)",
        (
            Option("model", help=recipe.option_named("model").help, positional=True),
            *recipe_options("lr-find"),
            Option("start_lr", float, 1e-7, "the first step's lr (default 1e-7)", flag="--start-lr", check=positive),
            Option("end_lr", float, 10.0, "the last step's lr (default 10)", flag="--end-lr", check=positive),
            Option(
                "steps",
                int,
                100,
                "optimizer steps, if the loss does not diverge first (default 100)",
                flag="--steps",
                check=positive_int,
            ),
            *run_flags("output folder for lr-find.json and lr-find.png (default runs/lr-find-MODEL-DATASET-<time>)"),
        ),
        kind="lr-find option",
    )


PRUNERS = ("median", "hyperband", "none")

# A dataset's search space when a sweep names no --param. Fashion-MNIST's was chosen with a sweep (docs/sweeps.md,
# "Measured answer", resnet20 at 2 minutes, 31 trials): its best configurations lie inside every range (lr 0.24-0.40,
# weight decay 1e-5 to 7e-4, batch 64 or 128), and lr below 0.03 never made the top (5 trials, each pruned or last),
# so the lr range starts there, with the dataset's default of 0.05 inside.
DEFAULT_SPACES = {
    "fashion-mnist": ("lr=3e-2:5e-1:log", "weight_decay=1e-5:1e-3:log", "batch_size=64,128,256"),
}


def _sweep() -> Command:
    return Command(
        "sweep",
        "search training options with Optuna (TPE): each trial a cnnlab train run; many machines share a study "
        "through --storage (docs/sweeps.md)",
        (
            Option("model", help=recipe.option_named("model").help, positional=True),
            *recipe_options("sweep"),
            Option(
                "param",
                list,
                flag="--param",
                nargs="+",
                metavar="NAME=SPEC",
                help="a training option to search: lr=1e-4:1e-1:log (log-uniform), weight_decay=0:1e-3 (uniform), "
                "batch_size=64,128,256 (choices); repeatable. Without it, fashion-mnist searches its default space "
                f"(docs/sweeps.md): {' '.join(DEFAULT_SPACES['fashion-mnist'])}",
            ),
            Option(
                "trials",
                int,
                30,
                "finished or pruned trials in the study, all workers together (default 30)",
                flag="--trials",
                check=positive_int,
            ),
            Option(
                "pruner",
                default="median",
                choices=PRUNERS,
                flag="--pruner",
                help="stop trials whose validation accuracy lags: median (default), hyperband or none",
            ),
            Option("study", flag="--study", help="the study's name (default: the --out folder's name)"),
            Option(
                "storage",
                flag="--storage",
                metavar="URL",
                help="sqlite:///PATH, postgresql://..., mysql://... or journal:PATH (default sqlite:///OUT/study.db); "
                "workers given the same --storage and --study share one study",
            ),
            out("sweep folder, one run folder per trial in it (default runs/sweep-MODEL-DATASET-<time>)"),
            SEEDS,
            QUIET,
        ),
        kind="sweep option",
    )


# ------------------------------------------------------------------------------------------------- the registry
_BUILDERS = (
    _train,
    _runs,
    _eval,
    _predict,
    _export,
    _compare,
    _finetune,
    _lr_find,
    _sweep,
    _speedrun,
    _models,
    _experiment,
    _trace,
    _summary,
    _visualize,
    _lab,
)


@functools.cache
def commands() -> dict[str, Command]:
    """Every command by name, in `cnnlab --help` order (built on first use: TrainConfig's options are read then)."""
    return {built.name: built for built in (build() for build in _BUILDERS)}


def command(name: str) -> Command:
    """The declaration of command `name`; an unknown name lists the closest."""
    if name not in commands():
        raise unknown_name_error("command", name, commands())
    return commands()[name]
