"""Fine-tuning a trained network on a new dataset: a new head, then the backbone frozen, trained at its own (lower)
learning rate, or adapted through LoRA adapters on its convolutions.

    finetune("runs/simple_cnn-digits-...", "fashion-mnist", freeze="backbone")             # a linear probe
    finetune("resnet18-f37072fd.pth", "cifar10", backbone_lr=1e-3, head_lr=1e-2)           # torchvision weights
    finetune("runs/...", "digits", freeze="backbone", lora_rank=4)                          # LoRA on every conv

The source is a cnnlab run directory (its model.safetensors, checksummed) or a torchvision-format weights file,
read weights-only: a pickle that would run code is refused. Training goes through the project's trainer, with one
parameter group for the head and one for the rest. The result is an ordinary run directory (`cnnlab eval` and
`predict` work on it): LoRA updates are merged into their convs before the final weights are saved.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import checkpoint
from cnnlab.building import SPEC, ZOO, build_model, model_kind
from cnnlab.data import ImageDataset, load_dataset
from cnnlab.engine.config import DATASET_DEFAULTS, GENERIC_DEFAULTS, TrainConfig, option_named
from cnnlab.engine.phases import Phase
from cnnlab.engine.trainer import run
from cnnlab.errors import CnnlabError, ResumeConflictError
from cnnlab.measure import count_params
from cnnlab.measure.spec import split_outside_parentheses
from cnnlab.models.base import ImageClassifier
from cnnlab.options.commands import BN_STATS, PhaseSpec, parse_phases
from cnnlab.registry import create_model, list_models
from cnnlab.rundir import WEIGHTS, FinetuneRecord, RunDir, default_run_dir, optional, prepare_run_dir

FREEZE_CHOICES = ("none", "backbone")
HEAD_LAST = "last"  # --head's default: a new final linear layer, the rest of the source's classifier kept
BACKBONE_LR_FACTOR = 0.1  # default backbone lr = head lr / 10: move the pretrained features less than the new head


class LoRAConv2d(nn.Module):
    """A frozen conv plus a trainable low-rank update (Hu et al. 2021, arXiv:2106.09685, applied to convolutions):

        y = conv(x) + (alpha / rank) * B(A(x))

    A is a k x k conv from in_chans to `rank` channels with the frozen conv's stride, padding and dilation; B a 1x1
    conv from `rank` to out_chans. B starts at zero, so the wrapped network starts exactly as the pretrained one;
    A starts like a fresh conv (Kaiming-uniform). Trainable parameters: rank * (in * k * k + out), against
    out * in * k * k for the conv itself. B(A(x)) is itself a k x k conv with weight B @ A, so `merged()` folds the
    update into one plain conv with no cost at inference. Grouped convs are not wrapped (see `add_lora`).
    """

    def __init__(self, conv: nn.Conv2d, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise CnnlabError(f"--lora-rank must be a positive whole number, got {rank}")
        if conv.groups != 1:
            raise CnnlabError("LoRA adapters wrap ungrouped convs only")
        self.conv = conv.requires_grad_(False)
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank  # alpha = rank by default: scale 1
        self.lora_a = nn.Conv2d(
            conv.in_channels,
            rank,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            bias=False,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        self.lora_b = nn.Conv2d(
            rank, conv.out_channels, 1, bias=False, device=conv.weight.device, dtype=conv.weight.dtype
        )
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in, H, W]
        return self.conv(x) + self.scale * self.lora_b(self.lora_a(x))  # [B, out, H', W'], both paths

    def delta_weight(self) -> torch.Tensor:
        """The update as a k x k conv weight: scale * B @ A, [out, in, k, k]."""
        return self.scale * torch.einsum("or,rikl->oikl", self.lora_b.weight[:, :, 0, 0], self.lora_a.weight)

    @torch.no_grad()
    def merged(self) -> nn.Conv2d:
        """A plain conv computing what this module computes (up to float rounding)."""
        conv = self.conv
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        fused.weight.copy_(conv.weight + self.delta_weight())
        if conv.bias is not None:
            fused.bias.copy_(conv.bias)
        return fused

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}"


class FrozenStatsNorm(nn.Module):
    """A BatchNorm2d that normalises with its stored statistics even in train mode and never updates them: a
    frozen backbone's BN layers, so a linear probe really trains on fixed features."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.norm = norm.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        return F.batch_norm(x, n.running_mean, n.running_var, n.weight, n.bias, training=False, eps=n.eps)


def _replace_modules(model: nn.Module, wrap, skip: nn.Module | None = None) -> int:
    """Replace every child module m (outside `skip`) for which wrap(m) is not None by wrap(m); return how many."""
    count = 0
    for parent in list(model.modules()):
        if parent is skip:
            continue
        for name, child in list(parent.named_children()):
            if child is skip:
                continue
            replacement = wrap(child)
            if replacement is not None:
                setattr(parent, name, replacement)
                count += 1
    return count


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> int:
    """Wrap every ungrouped nn.Conv2d of `model` in a LoRAConv2d (in place); return how many were wrapped."""
    return _replace_modules(
        model, lambda m: LoRAConv2d(m, rank, alpha) if isinstance(m, nn.Conv2d) and m.groups == 1 else None
    )


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRAConv2d back into a plain conv (in place); return how many were merged."""
    return _replace_modules(model, lambda m: m.merged() if isinstance(m, LoRAConv2d) else None)


def freeze_norm_statistics(model: nn.Module, skip: nn.Module | None = None) -> int:
    return _replace_modules(model, lambda m: FrozenStatsNorm(m) if isinstance(m, nn.BatchNorm2d) else None, skip)


def unfreeze_norm_statistics(model: nn.Module) -> int:
    return _replace_modules(model, lambda m: m.norm if isinstance(m, FrozenStatsNorm) else None)


def prepare_for_finetuning(
    model: nn.Module,
    num_classes: int,
    freeze: str = "none",
    lora_rank: int | None = None,
    lora_alpha: float | None = None,
    keep_head: bool = False,
    head: str = HEAD_LAST,
    bn_stats: str = "frozen",
) -> nn.Module:
    """In place: a new `num_classes` head (`head`: "last", the final linear alone, `reset_classifier`; "linear" or a
    layer spec, the whole classifier, `ImageClassifier.replace_head`), or with `keep_head` the trained one (its class
    count must be `num_classes`); then `freeze="backbone"` freezes every other parameter (and, with
    bn_stats="frozen", every BN statistic), and `lora_rank` wraps the backbone's convs in LoRA adapters (their own
    weights frozen; with freeze="none" the backbone's BN and linear layers still train)."""
    if freeze not in FREEZE_CHOICES:
        raise CnnlabError(f"--freeze must be one of: {', '.join(FREEZE_CHOICES)}; got '{freeze}'")
    if keep_head and head != HEAD_LAST:
        raise CnnlabError(f"--keep-head keeps the source's head; --head {head} would build a new one: pass one")
    if not keep_head:
        new_head(model, num_classes, head)
    elif classifier_of(model).out_features != num_classes:
        raise CnnlabError(
            f"--keep-head needs a head of {num_classes} classes, the dataset's; the source's has "
            f"{classifier_of(model).out_features}"
        )
    set_trainable(model, "head" if freeze == "backbone" else "all", head, bn_stats)
    if lora_rank is not None:
        add_lora(model, lora_rank, lora_alpha)  # the head is an nn.Linear: never wrapped
    return model


def new_head(model: nn.Module, num_classes: int, head: str) -> None:
    if head == HEAD_LAST and hasattr(model, "reset_classifier"):
        model.reset_classifier(num_classes)
    elif isinstance(model, ImageClassifier):
        model.replace_head(head, num_classes)
    elif head == HEAD_LAST:  # your own network: its final linear layer, drawn afresh
        name, old = last_linear(model)
        model.set_submodule(name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    else:
        raise CnnlabError(f"--head {head} replaces a zoo model's classifier; {type(model).__name__} takes --head last")


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """A network of your own's classifier as `--head last` sees it: its last nn.Linear (name, module)."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        label = getattr(model, "model_name", type(model).__name__)
        raise CnnlabError(f"--head last replaces the final linear layer; {label} has no nn.Linear to replace")
    return found[-1]


def classifier_of(model: nn.Module) -> nn.Module:
    """The final linear layer: a zoo model's `get_classifier()`, your own network's last nn.Linear."""
    return model.get_classifier() if hasattr(model, "get_classifier") else last_linear(model)[1]


def head_module(model: nn.Module, head: str = HEAD_LAST) -> nn.Module:
    """What trains as the head: the final linear layer ("last"), or the whole new classifier ("linear", SPEC)."""
    path = getattr(model, "head_path", None)
    return model.get_submodule(path) if head != HEAD_LAST and path else classifier_of(model)


def set_trainable(model: nn.Module, trains: str, head: str = HEAD_LAST, bn_stats: str = "frozen") -> None:
    """`trains` "all": every parameter trains and BN statistics move. "head": the head alone trains
    (`head_module`); the backbone's BN statistics stay frozen (FrozenStatsNorm) or, bn_stats="update", move with
    each batch as in the tutorial's model.train(). A phase's `enter` (the trainer calls it as the phase begins)."""
    if bn_stats not in BN_STATS:
        raise CnnlabError(f"--bn-stats must be one of: {', '.join(BN_STATS)}; got '{bn_stats}'")
    unfreeze_norm_statistics(model)
    model.requires_grad_(trains == "all")
    if trains == "head":
        kept = head_module(model, head)
        kept.requires_grad_(True)
        if bn_stats == "frozen":
            freeze_norm_statistics(model, skip=kept)


def finalize(model: nn.Module) -> nn.Module:
    """Undo the training-time wrappers (merge LoRA, plain BN again): the model's registered architecture."""
    merge_lora(model)
    unfreeze_norm_statistics(model)
    return model.requires_grad_(True)


def head_and_backbone(head_lr: float, backbone_lr: float, head: str = HEAD_LAST):
    """The trainer's `param_groups` hook: the head (`head_module`) at head_lr, everything else (adapters included)
    at backbone_lr."""

    def groups(model: nn.Module) -> list[dict]:
        head_ids = {id(p) for p in head_module(model, head).parameters()}
        return [
            {"params": [p for p in model.parameters() if id(p) in head_ids], "lr": head_lr},
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": backbone_lr},
        ]

    return groups


def training_phases(specs: tuple[PhaseSpec, ...], head: str, bn_stats: str) -> list[Phase]:
    """`--phases` as the trainer's phases: each a fresh optimizer over every trainable parameter at its lr; a
    later phase sets what trains as it begins (the first is set before the run, by `prepare_for_finetuning`)."""
    return [
        Phase(
            spec.trains,
            spec.epochs,
            spec.optimizer,
            spec.lr,
            enter=partial(set_trainable, trains=spec.trains, head=head, bn_stats=bn_stats),
        )
        for spec in specs
    ]


def describe_trainable(model: nn.Module) -> str:
    """ "5,770 trainable parameters in 2 tensors of 1,523,866" """
    tensors = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    return f"{sum(p.numel() for p in tensors):,} trainable parameters in {len(tensors)} tensors of {total:,}"


# ------------------------------------------------------------------------------------------------- the source
def model_name_from_file(path: Path) -> str:
    """A torchvision file is named like its model ("resnet18-f37072fd.pth"): the longest registered name that
    the file name starts with."""
    stem = path.name.split(".")[0].lower()
    matches = [
        name for name in list_models() if stem == name or stem.startswith(f"{name}-") or stem.startswith(f"{name}_")
    ]
    if not matches:
        raise CnnlabError(f"cannot tell which model {path.name} holds; pass --model NAME (see cnnlab models)")
    return max(matches, key=len)


def load_source(source: str | Path, data: ImageDataset, model_name: str | None = None) -> tuple[nn.Module, TrainConfig]:
    """The pretrained model (its original head still on) and the TrainConfig fields that rebuild its architecture.

    A run directory: its architecture from config.json, its weights from model.safetensors (checksum verified).
    A weights file: `create_model(name, weights=path)` (weights-only unpickling; the first conv adapted to the
    data's channels); the architecture is kept as trained (no small-input stem swap)."""
    source = Path(source)
    if source.is_dir():
        run = RunDir(source)
        saved = optional(run.read_config)
        if saved is None or saved.data is None or not run.has(WEIGHTS):
            raise CnnlabError(f"{source} is not a finished cnnlab run (it needs config.json and model.safetensors)")
        config, meta = saved.train_config(), saved.data.to_dict()
        if model_name not in (None, config.model):
            raise CnnlabError(f"{source} holds a {config.model}, not a {model_name}")
        if meta["in_chans"] != data.in_chans:
            raise CnnlabError(
                f"{source} was trained on {meta['in_chans']}-channel images; {data.name} has {data.in_chans}"
            )
        model = build_model(config, len(meta["classes"]), meta["in_chans"], meta["image_size"], run_dir=source)
        checkpoint.load_model_weights(model, source / "model.safetensors")
        code = config.model_code and {**config.model_code, "origin": str(run.model_source)}  # the new run copies it
        return model, TrainConfig(
            model=config.model, small_input=config.small_input, model_kwargs=config.model_kwargs, model_code=code
        )
    if not source.is_file():
        raise CnnlabError(f"{source} is neither a run directory nor a weights file")
    name = model_name or model_name_from_file(source)
    model = create_model(name, in_chans=data.in_chans, input_size=data.image_size, weights=source)
    return model, TrainConfig(model=name, small_input=False)


# TrainConfig options that finetune cannot take, and why: it refuses them rather than drop them.
NOT_FOR_FINETUNE = {
    "small_input": "the architecture, stem included, is the source's own",
    "model_kwargs": "the architecture is the source's own",
    "weights": "the source is the starting weights",
    "lr": "its learning rates are head_lr (--head-lr, or --lr on the command line) and backbone_lr",
    "model": "the model is the source's own (name a weights file's architecture with model_name, --model)",
}


def check_options(options: dict) -> None:
    """CnnlabError for a TrainConfig option that cannot apply to fine-tuning (or is not one at all)."""
    for name in options:
        if name in NOT_FOR_FINETUNE:
            flag = "--" + name.replace("_", "-")
            raise CnnlabError(f"{flag} does not apply to finetune: {NOT_FOR_FINETUNE[name]}")
        option_named(name)  # a misspelt name lists the closest


@dataclass(frozen=True)
class Recipe:
    """finetune's own options (finetune.json records them): what a resumed run rebuilds its model from."""

    freeze: str = "none"
    head: str = HEAD_LAST
    phases: str | None = None  # --phases' text (options.commands.parse_phases)
    bn_stats: str | None = None  # None: "frozen" where a backbone is frozen
    head_lr: float | None = None
    backbone_lr: float | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    keep_head: bool = False
    model_name: str | None = None

    def check(self, options: dict) -> None:
        """CnnlabError for options that contradict each other, the TrainConfig `options` among them (every one
        would otherwise be ignored)."""
        if self.phases is not None:
            for name in ("epochs", "optimizer", "lr"):
                if name in options:
                    raise CnnlabError(f"--{name} does not combine with --phases: each phase sets its own")
            for flag, value in (
                ("--freeze backbone", self.freeze != "none"),
                ("--head-lr", self.head_lr),
                ("--backbone-lr", self.backbone_lr),
                ("--lora-rank", self.lora_rank),
            ):
                if value:
                    raise CnnlabError(f"{flag} does not combine with --phases: each phase says what trains and its lr")
        phases = parse_phases(self.phases) if self.phases is not None else ()
        frozen = self.freeze == "backbone" or any(phase.trains == "head" for phase in phases)
        if self.bn_stats is not None and not frozen:
            raise CnnlabError("--bn-stats applies under a frozen backbone: --freeze backbone or a head phase")


def finetune(
    source: str | Path | None = None,
    dataset: str | None = None,
    *,
    data: ImageDataset | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    **options,
) -> dict:
    """Fine-tune the model in `source` (run dir or weights file) on `dataset`; returns the trainer's results plus
    finetune.json's record ("source", "trainable_params", "head", "phases", ...).

    `options` are finetune's own (`Recipe`: freeze, head, phases, bn_stats, head_lr, backbone_lr, lora_rank,
    lora_alpha, keep_head, model_name) and TrainConfig fields (epochs, batch_size, optimizer, out, seed, ...).
    head_lr defaults to the dataset's lr, backbone_lr to head_lr / 10. With freeze="backbone" the backbone's lr
    applies to LoRA adapters only. `keep_head` continues with the source's trained head (same class count, its
    outputs taken as the dataset's classes in order) instead of a new one. `phases` ("head:3:adamw:1e-3,all:10:
    adamw:1e-5") trains in phases in this one run. `resume`: continue that run from its latest checkpoint.
    """
    own = {f.name: options.pop(f.name) for f in fields(Recipe) if f.name in options}
    if resume is not None:
        return resume_finetune(Path(resume), source, dataset, own, options, quiet)
    if source is None:
        raise CnnlabError("finetune needs a SOURCE (a run directory or a weights file), or --resume RUN_DIR")
    recipe = Recipe(**own)
    recipe.check(options)
    check_options(options)
    dataset = dataset if dataset is not None else option_named("dataset").default  # declared once, in TrainConfig
    if data is None:
        data = load_dataset(dataset, options.get("data_dir"), image_size=options.get("image_size"))
    model, config = build(source, data, recipe, dataset, options)
    record = FinetuneRecord(str(source), count_params(model, trainable_only=True), recipe_values(recipe, config))
    path = prepare_run_dir(Path(config.out) if config.out else default_run_dir(config), overwrite)
    config.out = str(path)
    RunDir(path).write_finetune(record)  # first: a resumed run rebuilds its model from it
    return train_finetuned(model, config, data, recipe, record, quiet=quiet)


def build(
    source: str | Path, data: ImageDataset, recipe: Recipe, dataset: str, options: dict
) -> tuple[nn.Module, TrainConfig]:
    """The source's model prepared for the recipe's first phase (its new head drawn from the seed), and the
    run's TrainConfig."""
    model, arch = load_source(source, data, recipe.model_name)
    head = recipe.head
    if model_kind(arch.model) != ZOO:  # the new run's text (a spec's head rewritten) rebuilds what it trains
        model, arch = own_network_for(model, arch, Path(source), data, recipe)
        head = HEAD_LAST  # its classifier is now its final linear layer
    kwargs = dict(arch.model_kwargs) | ({"head": head} if head != HEAD_LAST else {})
    specs = parse_phases(recipe.phases) if recipe.phases is not None else ()
    if specs:
        options = {**options, "epochs": sum(s.epochs for s in specs), "optimizer": specs[0].optimizer}
        head_lr = specs[0].lr
    else:
        head_lr = learning_rates(dataset, recipe.head_lr, recipe.backbone_lr)[0]
    config = TrainConfig(
        model=arch.model, dataset=dataset, lr=head_lr, small_input=arch.small_input, model_kwargs=kwargs, **options
    )
    torch.manual_seed(config.seed)  # the new head and the adapters' A are drawn from the run's seed
    freeze = "backbone" if specs and specs[0].trains == "head" else recipe.freeze
    bn_stats = recipe.bn_stats or "frozen"
    prepare_for_finetuning(
        model, data.num_classes, freeze, recipe.lora_rank, recipe.lora_alpha, recipe.keep_head, head, bn_stats
    )
    return model, config


def own_network_for(
    model: nn.Module, arch: TrainConfig, source: Path, data: ImageDataset, recipe: Recipe
) -> tuple[nn.Module, TrainConfig]:
    """A run of your own network, rebuilt for the new run as `cnnlab eval` will rebuild it: a spec with its head
    rewritten for the dataset's classes (`spec_with_head`), code from the source run's copy (its constructor
    given the new class count), and the trained weights carried over all but the final linear layer's. A network
    that the rebuild does not reproduce, its head aside, is refused."""
    if recipe.keep_head:
        return model, arch
    if model_kind(arch.model) == SPEC:
        arch = replace(arch, model=spec_with_head(arch.model, data.num_classes, recipe.head))
    elif recipe.head != HEAD_LAST:
        raise CnnlabError(
            f"--head {recipe.head} replaces a whole classifier; {arch.model} is code, whose constructor builds its "
            "own (and a run rebuilds it from that code): use --head last, its final linear layer"
        )
    rebuilt = build_model(arch, data.num_classes, data.in_chans, data.image_size, run_dir=source)
    head_name = last_linear(rebuilt)[0]
    trained, wanted = model.state_dict(), rebuilt.state_dict()
    body = [key for key in wanted if not key.startswith(f"{head_name}.")]
    differs = [key for key in body if key not in trained or trained[key].shape != wanted[key].shape]
    if differs:
        raise CnnlabError(
            f"{arch.model} built for {data.num_classes} classes is not the trained network with a new final "
            f"linear layer ({differs[0]} differs): fine-tune it on a dataset with its own class count"
        )
    rebuilt.load_state_dict({key: trained[key] for key in body}, strict=False)
    return rebuilt, arch


def spec_with_head(spec: str, num_classes: int, head: str) -> str:
    """A layer spec's text for a new head: "last", its final top-level `fc` to `num_classes`; "linear", every
    layer after its last `flatten` or `gap` (its classifier) replaced by one `fc num_classes`."""
    items = [item.strip() for item in split_outside_parentheses(spec, ";", spec)]
    if head == HEAD_LAST:
        fcs = [index for index, item in enumerate(items) if item.split()[:1] == ["fc"]]
        if not fcs:
            raise CnnlabError(f"--head last replaces the spec's final fc layer; '{spec}' has none at its top level")
        return "; ".join([*items[: fcs[-1]], f"fc {num_classes}", *items[fcs[-1] + 1 :]])
    if head != "linear":
        raise CnnlabError(
            f"--head {head} builds a zoo model's classifier; for a spec write its classifier into the spec itself "
            "and train it, or fine-tune with --head last or --head linear"
        )
    cuts = [index for index, item in enumerate(items) if item in ("flatten", "gap")]
    if not cuts:
        raise CnnlabError(f"--head linear replaces the layers after the spec's flatten or gap; '{spec}' has neither")
    return "; ".join([*items[: cuts[-1] + 1], f"fc {num_classes}"])


def recipe_values(recipe: Recipe, config: TrainConfig) -> dict:
    """finetune.json's record of the recipe, the learning rates resolved."""
    values = asdict(recipe)
    if recipe.phases is None:
        values["head_lr"], values["backbone_lr"] = learning_rates(config.dataset, recipe.head_lr, recipe.backbone_lr)
    return values


def train_finetuned(
    model: nn.Module, config: TrainConfig, data: ImageDataset, recipe: Recipe, record: FinetuneRecord, **run_args
) -> dict:
    """Train the prepared model (a new run, or with `resume` the run in that folder), then save its weights as
    the registered architecture; returns the results and finetune.json's record."""
    bn_stats = recipe.bn_stats or "frozen"
    phases = training_phases(parse_phases(recipe.phases), recipe.head, bn_stats) if recipe.phases else None
    values = record.values
    groups = None if phases else head_and_backbone(values["head_lr"], values["backbone_lr"], recipe.head)
    if not run_args.get("quiet"):
        print(f"{config.model}, head {recipe.head}: {describe_trainable(model)}", flush=True)
    results = run(config, data=data, model=model, param_groups=groups, phases=phases, **run_args)
    save_finetuned(model, config.model, data.name, Path(results["run_dir"]))
    return {**results, **record.to_dict()}


def resume_finetune(
    run_dir: Path, source: str | Path | None, dataset: str | None, own: dict, options: dict, quiet: bool
) -> dict:
    """Continue the fine-tuning run in `run_dir`: its model rebuilt from finetune.json's source and recipe as the
    run began, then the trainer's resume (the checkpoint's phase, weights and optimizer state). Options given with
    it must equal the run's own (the trainer's resume rule for the TrainConfig ones)."""
    folder = RunDir(run_dir)
    record, saved = folder.read_finetune(), folder.read_config().train_config()
    recipe = Recipe(**{f.name: record.values.get(f.name, f.default) for f in fields(Recipe)})
    for name, value in own.items():
        if value != getattr(recipe, name) and value != getattr(Recipe, name, None):
            raise ResumeConflictError(name, getattr(recipe, name), value)
    for name, given, kept in (("source", source, record.source), ("dataset", dataset, saved.dataset)):
        if given is not None and str(given) != kept:
            raise ResumeConflictError(name, kept, given)
    check_options(options)
    data = load_dataset(saved.dataset, options.get("data_dir", saved.data_dir), image_size=saved.image_size)
    model, _ = build(record.source, data, recipe, saved.dataset, {"seed": saved.seed})
    config = replace(saved, **options)
    return train_finetuned(model, config, data, recipe, record, resume=run_dir, quiet=quiet)


def learning_rates(dataset: str, head_lr: float | None, backbone_lr: float | None) -> tuple[float, float]:
    """The head's and the backbone's peak lr: the dataset's lr and a tenth of the head's unless given."""
    recipe = DATASET_DEFAULTS.get(dataset.split(":", 1)[0], GENERIC_DEFAULTS)
    head_lr = head_lr if head_lr is not None else recipe["lr"]
    backbone_lr = backbone_lr if backbone_lr is not None else head_lr * BACKBONE_LR_FACTOR
    for flag, value in (("head-lr", head_lr), ("backbone-lr", backbone_lr)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise CnnlabError(f"--{flag} must be a positive number, got {value!r}")
    return head_lr, backbone_lr


def save_finetuned(model: nn.Module, arch: str, dataset: str, run_dir: Path) -> None:
    """Overwrite the run's weights with the plain architecture (its head as config.json's model_kwargs say)."""
    # The trainer saved the weights it evaluated for results.json: the weight average's with --ema, which `model`
    # (the raw weights) is not. Load them back into the still-wrapped model so the saved run reports the same.
    checkpoint.load_model_weights(model, run_dir / "model.safetensors")
    # The trainer saved the wrapped model; the run keeps the registered architecture so `cnnlab eval` rebuilds it.
    finalize(model)
    checkpoint.save_weights(
        model.to(memory_format=torch.contiguous_format),
        run_dir / "model.safetensors",
        metadata={"model": arch, "dataset": dataset},
    )
