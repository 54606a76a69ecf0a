"""The training loop: data in memory as uint8, per-batch normalisation and augmentation, one code path for
every model in the zoo.

`run()` reads top to bottom: `setup` (recipe, devices, data), `build_state` (model, optimizer, schedule, hooks),
then `create_run` or `restore`, `start`, and a plain loop of `train_one_epoch` (whose end, `end_epoch`, evaluates,
logs and checkpoints with `save`), then `finish`. Two dataclasses carry what those steps share: `Job`, fixed
before the first step, and `TrainState`, everything that changes from step to step (a checkpoint holds it).

What is not the loop is a hook (`cnnlab.engine.hooks`): the weight average, Lookahead, the time budget,
TensorBoard and the progress display are called before and after each step, at each epoch's end and at the run's.
They see the run through `Engine`, whose typed methods are the only way they change it (`Engine.replan`).

Randomness is derived, not carried: epoch e shuffles with a generator seeded from (seed, e), and step s of that
epoch augments with one seeded from (seed, e, s). A run resumed mid-epoch therefore sees exactly the batches and
crops an uninterrupted run sees, with no generator state to save beyond torch's global one (dropout).

Under torchrun every process runs every step below, and every collective (`world.*`) in the same order: a branch
taken by one process alone would leave the others waiting. Only process 0 writes files (`world.on_main`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import NoReturn

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import checkpoint
from cnnlab.batches import prepare_batch, resize_batch
from cnnlab.building import build_new_model, code_record
from cnnlab.data import ImageDataset, PixelPCA, load_dataset, pixel_pca, split_validation
from cnnlab.engine import budget, dirac, distributed, tensorboard_log, whitening
from cnnlab.engine.config import TrainConfig, resolve, resume_config
from cnnlab.engine.device import resolve_device
from cnnlab.engine.ema import EmaHook, warn_short_horizon
from cnnlab.engine.hooks import EpochEvent, Hook, RunEvent, StepEvent
from cnnlab.engine.lookahead import LookaheadHook
from cnnlab.engine.optim import ParamGroups, ProgressSchedule, create_optimizer, create_scheduler
from cnnlab.engine.phases import Phase, phase_at
from cnnlab.engine.progress import Progress, ProgressHook
from cnnlab.engine.signals import TrainingInterrupted, stop_requests
from cnnlab.errors import BatchNormBatchTooSmall, CnnlabError, NonFiniteLoss, OptionValueError
from cnnlab.inference.evaluation import check_flip_tta, check_tta_shift, evaluate_arrays
from cnnlab.measure import count_macs, count_params
from cnnlab.models import trust
from cnnlab.models.references import ModelReferenceError, check_model
from cnnlab.models.weights import load_weights
from cnnlab.precision import autocast, autocast_dtype, check_precision, precision_name
from cnnlab.rundir import (
    CURVES,
    FINETUNE,
    Results,
    RunConfig,
    RunDir,
    data_metadata,
    default_run_dir,
    prepare_run_dir,
    versions,
)


# --------------------------------------------------------------------------------------------- data on the device
@dataclass
class Splits:
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def make_splits(data: ImageDataset, config: TrainConfig) -> Splits:
    images, labels = data.train_images, data.train_labels
    if config.train_subset is not None:
        images, labels = images[: config.train_subset], labels[: config.train_subset]
    train_x, train_y, val_x, val_y = split_validation(images, labels, config.val_fraction, config.seed)
    if len(train_x) < config.batch_size:
        raise CnnlabError(
            f"--batch-size {config.batch_size} is larger than the training split ({len(train_x)} "
            "images); use a smaller batch"
        )
    return Splits(train_x, train_y, val_x, val_y, data.test_images, data.test_labels)


# ---------------------------------------------------------------------------------------------- model and optimiser
def build_optimizer(
    model: nn.Module, config: TrainConfig, param_groups: ParamGroups | None = None
) -> torch.optim.Optimizer:
    """`create_optimizer` with the recipe's optimizer, lr, weight decay and momentum."""
    return create_optimizer(
        model, config.optimizer, config.lr, config.weight_decay, config.momentum, param_groups, config.muon_lr
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """`create_scheduler` with the recipe's schedule; a --time-budget run's can be re-planned."""
    return create_scheduler(optimizer, config.schedule, total_steps, replannable=config.time_budget is not None)


def classification_loss(
    output, targets: torch.Tensor, label_smoothing: float, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the logits; a tuple output (GoogLeNet's train mode) is (logits, *aux_logits), each auxiliary
    head adding `aux_weight` x its own loss, as in Szegedy et al. 2014. Returns (loss, logits)."""
    logits, *aux = output if isinstance(output, tuple) else (output,)
    loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    for aux_logits in aux:
        loss = loss + aux_weight * F.cross_entropy(aux_logits, targets, label_smoothing=label_smoothing)
    return loss, logits


@torch.no_grad()
def fewest_batch_norm_values(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[str, int] | None:
    """(name, values per channel per image) of the batch-norm layer that sees the fewest, read from the input
    shapes of one eval-mode forward pass of a blank image (no statistics change, no random numbers drawn); None
    for a model without batch norm. Layers only training mode runs (GoogLeNet's auxiliary heads) are not seen."""
    seen: dict[str, int] = {}

    def record(name: str, module: nn.Module, args: tuple) -> None:
        seen.setdefault(name, math.prod(args[0].shape[2:]))  # [B, C, *spatial]: a BatchNorm1d on [B, C] has 1

    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return None
    hooks = [m.register_forward_pre_hook(partial(record, name)) for name, m in layers]
    tensor = next((t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()), torch.zeros(()))
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *input_shape, device=tensor.device, dtype=tensor.dtype))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return min(seen.items(), key=lambda item: item[1]) if seen else None


# ---------------------------------------------------------------------------------------------- what steps share
@dataclass
class Job:
    """What a run fixes before its first step: the resolved recipe, where it computes, the data, its directory."""

    config: TrainConfig
    world: distributed.World
    device: torch.device
    data: ImageDataset
    splits: Splits
    dtype: torch.dtype | None  # autocast's; None: fp32
    steps_per_epoch: int  # the last partial batch is dropped
    rows: slice | None  # this process's share of each global batch (None: all of it)
    progress: Progress  # one process speaks for all
    run_dir: Path | None = None
    params: int = 0
    macs: int = 0
    color: tuple[PixelPCA, float] | None = None  # --pca-color: the training pixels' PCA and its sigma
    flip_sides: torch.Tensor | None = None  # --alternate-flips: each training image mirrored in even epochs (bool)
    phases: tuple[Phase, ...] = ()  # none: one phase, the recipe's optimizer and lr over every epoch

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


@dataclass
class TrainState:
    """Everything that lives across steps; a checkpoint holds all of it (`save`), so a resumed run continues
    exactly where the interrupted one was."""

    model: nn.Module  # the eager module: evaluated, checkpointed
    net: nn.Module  # what the steps call: DDP and/or torch.compile around `model`, or `model` itself
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 only
    aux_weight: float  # GoogLeNet's auxiliary heads' share of the loss
    hooks: list[Hook] = field(default_factory=list)  # called in order; those with a `key` are checkpointed
    epoch: int = 0  # the epoch in progress (0-based); == config.epochs once trained
    step: int = 0  # the next step of that epoch
    metrics: list[dict] = field(default_factory=list)  # metrics.csv's rows so far
    best_val: float = 0.0
    train_seconds: float = 0.0
    epoch_so_far: dict | None = None  # a mid-epoch checkpoint's running sums, until its epoch resumes
    last_test: tuple | None = None  # (loss, accuracy, predictions) of the latest epoch's test pass (test_every_epoch)
    phase: int = 0  # the index of the phase in progress (Job.phases), which its optimizer and schedule are

    @property
    def evaluated(self) -> nn.Module:
        """The weights evaluated and saved: a hook's own (the EMA's, with --ema), else the trained ones."""
        return next((m for m in (h.evaluated() for h in self.hooks) if m is not None), self.model)


@dataclass
class EpochTally:
    """The running sums of the epoch in progress (on the device), and the seconds an earlier process spent on it."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    seconds_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


class Engine:
    """The engine as its hooks see it: the run's facts, to read, and the typed ways to change what it owns."""

    def __init__(self, job: Job, state: TrainState) -> None:
        self._job, self._state = job, state
        self.results: dict | None = None  # the run's results, once `finish` has them

    @property
    def config(self) -> TrainConfig:
        return self._job.config  # read only: the resolved recipe

    @property
    def world(self) -> distributed.World:
        return self._job.world

    @property
    def splits(self) -> Splits:
        return self._job.splits

    @property
    def steps_per_epoch(self) -> int:
        return self._job.steps_per_epoch

    @property
    def epochs(self) -> int:
        return self._job.config.epochs

    def last_planned_step(self) -> int:
        """The run's last step (0-based, run-wide) as planned now."""
        return planned_steps(self._job, self._state) - 1

    def progress_at(self, step: int) -> float:
        return self._schedule().shape.progress(step)

    def lr_at(self, step: int) -> float:
        return self._schedule().lr_at(step)

    def replan(self, next_step: int, end_step: int) -> None:
        """Train steps next_step..end_step (run-wide, 0-based) to the schedule's end: the schedule's rest is
        re-mapped onto them (the next step's lr set), and the epochs become those steps rounded up (config.json
        records them). The epoch in progress ends at `end_step` when it falls inside it."""
        job = self._job
        self._schedule().remap(next_step, end_step)
        job.config.epochs = math.ceil((end_step + 1) / job.steps_per_epoch)
        job.world.on_main(lambda: RunDir(job.run_dir).update_config(epochs=job.config.epochs))

    def evaluate_sample(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        """The evaluated weights on these images, in this process alone (no collective)."""
        job = self._job
        return evaluate_arrays(
            self._state.evaluated,
            images,
            labels,
            job.data,
            dtype=job.dtype,
            channels_last=job.config.channels_last,
            flip_tta=job.config.tta,
            shift_tta=job.config.tta_shift,
        )

    def say(self, line: str) -> None:
        """A line on the run's console (beside the progress bar), unless quiet."""
        say(self._job, line)

    def add_results(self, **fields) -> None:
        """Fields for results.json, once `finish` has written it: in the returned results and the file."""
        job = self._job
        self.results.update(fields)
        job.world.on_main(lambda: RunDir(job.run_dir).update_results(**fields))

    def _schedule(self) -> ProgressSchedule:
        if not isinstance(self._state.scheduler, ProgressSchedule):
            raise CnnlabError(f"the {self.config.schedule} schedule is fixed for the run; only --time-budget re-plans")
        return self._state.scheduler


def training_side(job: Job, state: TrainState) -> int:
    """--progressive-resize: the side of this step's images, rising linearly from the option's pixels to the
    dataset's own over the first half of the planned steps (a budget run's plan, as it stands)."""
    start, full = job.config.progressive_resize, job.data.image_size
    progress = steps_done(job, state) / max(planned_steps(job, state) / 2, 1)
    return full if progress >= 1 else round(start + (full - start) * progress)


def check_progressive_resize(config: TrainConfig, model: nn.Module, data: ImageDataset) -> None:
    """Refuse, before training, a start side that is not below the images' own, or a network that cannot take it."""
    start, full = config.progressive_resize, data.image_size
    if start >= full:
        raise OptionValueError(
            "progressive_resize", f"{start} is not below the {full}-pixel side of {data.name} images"
        )
    try:
        check_model(model, (data.in_chans, start, start), data.num_classes)  # two blank images, in eval mode
    except ModelReferenceError as error:
        raise OptionValueError(
            "progressive_resize",
            f"{start}: on {start}-pixel images, {error.problem}; it needs a network that takes any size (global "
            "pooling before its classifier)",
        ) from None


def planned_steps(job: Job, state: TrainState) -> int:
    """The run's steps as planned now: a re-plannable schedule's end, else every epoch's steps."""
    if isinstance(state.scheduler, ProgressSchedule):
        return state.scheduler.end_step + 1
    return job.total_steps


# ------------------------------------------------------------------------------------------------------- training
def run(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    data: ImageDataset | None = None,
    model: nn.Module | None = None,
    param_groups: ParamGroups | None = None,
    hooks: list[Hook] | None = None,
    phases: list[Phase] | None = None,
) -> dict:
    """Train `config.model` on `config.dataset`, write the run directory, and return the results dict.

    `resume`: continue the run in that directory from its latest checkpoint (see `resumed_config` for what
    `config` may change). `model`: train this module (trained in place) instead of building `config.model`;
    `config.model` still names its architecture in the run files, and `config.weights` is not applied. For
    experiments and fine-tuning (a pretrained backbone, adapters, a depth the registry has no name for).
    `param_groups`: see `optim.create_optimizer`. `hooks`: more hooks, called after the recipe's own.
    `phases` (engine/phases.py): stretches of epochs with their own optimizer, lr and parameter groups (then
    `param_groups`, `config.optimizer` and `config.lr` are the first phase's); their epochs add up to the run's.
    A resumed run given `model` (fine-tuning) continues with that module, built as the run's was before its
    first step; its checkpoint's weights are loaded into it.
    """
    started = time.perf_counter()  # a --time-budget counts from here: loading the data is part of the run
    if resume is not None and model is None and RunDir(resume).has(FINETUNE):
        raise CnnlabError(f"{resume} is a fine-tuning run: resume it with cnnlab finetune --resume {resume}")
    if resume is not None:
        config = resumed_config(config, Path(resume))
    job = setup(config, data, quiet)
    job.phases = check_phases(job.config, phases or ())
    if job.phases:
        param_groups = job.phases[0].param_groups
    state = build_state(job, model, param_groups, fresh=resume is None)
    engine = Engine(job, state)
    if job.config.time_budget is not None:  # before `restore`, which gives it its earlier sessions' plan
        state.hooks.append(budget.BudgetPlanner(job.config.time_budget, started, engine))
    if resume is None:
        create_run(job, overwrite)
    else:
        restore(job, state, Path(resume))
    start(job, state, list(hooks or []))
    with stop_requests() as stop:
        while state.epoch < job.config.epochs:
            enter_phase(job, state, phase_at(job.phases, state.epoch) if job.phases else 0)
            train_one_epoch(job, state, stop)
    return finish(job, state, engine)


def check_phases(config: TrainConfig, phases: list[Phase]) -> tuple[Phase, ...]:
    """The phases, if they fit the recipe: their epochs add up to the run's, the first uses its optimizer and lr,
    and no hook that keeps copies of the weights or re-plans the schedule is on (each phase has its own)."""
    if not phases:
        return ()
    if sum(p.epochs for p in phases) != config.epochs:
        total = sum(p.epochs for p in phases)
        raise CnnlabError(f"the phases' epochs add up to {total}, not the run's {config.epochs}")
    if (phases[0].optimizer, phases[0].lr) != (config.optimizer, config.lr):
        raise CnnlabError("the first phase's optimizer and lr must be the recipe's (config.optimizer, config.lr)")
    for flag, on in (("--ema", config.ema), ("--lookahead", config.lookahead), ("--time-budget", config.time_budget)):
        if on:
            raise CnnlabError(f"{flag} does not combine with training phases: each phase has its own optimizer")
    return tuple(phases)


def enter_phase(job: Job, state: TrainState, index: int, announce: bool = True) -> None:
    """Enter the phases after the current one up to `index`: each changes the model (`Phase.enter`), then gets a
    fresh optimizer and a schedule over its own steps. Draws no random numbers, so a resumed run that enters
    them again trains as the uninterrupted one did."""
    while state.phase < index:
        state.phase += 1
        phase = job.phases[state.phase]
        if phase.enter is not None:
            phase.enter(state.model)
        config = job.config
        state.optimizer = create_optimizer(
            state.model,
            phase.optimizer,
            phase.lr,
            config.weight_decay,
            config.momentum,
            phase.param_groups,
            config.muon_lr,
        )
        state.scheduler = create_scheduler(state.optimizer, config.schedule, phase.epochs * job.steps_per_epoch)
        state.net = job.world.wrap(state.model, config.sync_bn)  # which parameters train changed: wrap anew
        if config.compile:
            state.net = torch.compile(state.net)
        if announce:  # as it begins, not as `restore` re-enters the checkpoint's
            line = f"phase {state.phase + 1} ({phase.name}): {phase.epochs} epochs, {phase.optimizer} lr {phase.lr:g}"
            say(job, line)


def say(job: Job, line: str) -> None:
    """A line on the run's console (beside the progress bar), unless quiet."""
    if not job.progress.quiet:
        (job.progress.bar.console if job.progress.bar else job.progress.console).print(line, highlight=False)


def resumed_config(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The config a resumed run continues with, by the resume rule (`config.resume_config`: model and dataset
    fixed, only resumable options changed, `epochs` grown for the constant schedule alone). A complete `config`
    (its `epochs` set; `cnnlab.api.train` merges one from the run's own) is checked field by field against the
    run's config.json; one that leaves `epochs` None names only the model and dataset, and perhaps a device, and
    continues with the run's saved recipe."""
    saved = RunDir(run_dir).read_config().train_config()
    if config.epochs is None:
        given = {"device": config.device}
    else:
        given = {
            f.name: getattr(config, f.name)
            for f in fields(TrainConfig)
            if f.name not in ("model", "dataset") and getattr(config, f.name) != getattr(saved, f.name)
        }
    return resume_config(saved, config.model, config.dataset, given, run_dir=run_dir)


def setup(config: TrainConfig, data: ImageDataset | None, quiet: bool) -> Job:
    """Resolve the recipe, check the device, join the process group (under torchrun), load and split the data."""
    config = resolve(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, distributed.local_rank())
    check_precision(config.precision, device)
    world = distributed.setup(device, config.batch_size, config.sync_bn)  # one process unless torchrun started more
    if config.tensorboard:
        tensorboard_log.require()
    data = data if data is not None else load_dataset(config.dataset, config.data_dir, image_size=config.image_size)
    if config.tta:  # refused before training, not after it
        check_flip_tta(data)
    if config.tta_shift:
        check_tta_shift(data, config.tta_shift)
    if config.pca_color and data.in_chans != 3:
        raise OptionValueError("pca_color", f"shifts RGB colours; {data.name} has {data.in_chans} channel(s)")
    splits = make_splits(data, config)
    color = (pixel_pca(splits.train_images), config.pca_color) if config.pca_color else None
    flip_sides = alternate_flip_sides(config, data, len(splits.train_images)) if config.alternate_flips else None
    if device.type != "cpu":  # uploaded once, still uint8; batches are normalised and augmented on the device
        splits = Splits(*(getattr(splits, f.name).to(device) for f in fields(Splits)))
    return Job(
        config,
        world,
        device,
        data,
        splits,
        dtype=autocast_dtype(config.precision, device.type),
        steps_per_epoch=len(splits.train_images) // config.batch_size,
        rows=world.rows(config.batch_size),
        progress=Progress(quiet=quiet or not world.is_main),
        color=color,
        flip_sides=flip_sides,
    )


def alternate_flip_sides(config: TrainConfig, data: ImageDataset, images: int) -> torch.Tensor:
    """Which training images --alternate-flips mirrors in even epochs (the others in odd ones): half at random,
    from the run's seed alone, so a resumed run and every torchrun process draw the same."""
    if not (config.augment and data.hflip):
        reason = "--augment is off" if not config.augment else f"mirroring can change a {data.name} image's class"
        raise OptionValueError("alternate_flips", f"mirrors augmented images, but {reason}")
    return torch.rand(images, generator=torch.Generator().manual_seed(config.seed * 7_919 + 17)) < 0.5


def build_state(job: Job, model: nn.Module | None, param_groups: ParamGroups | None, fresh: bool) -> TrainState:
    """The seeded model (with --weights, or --whiten's first conv, on a new run), its optimizer, schedule and
    loss scaler, and the hooks that keep weights of their own: Lookahead's slow weights, then the EMA's average
    (evaluated and saved instead of the trained weights)."""
    config = job.config
    model = init_model(job, model, fresh)
    if config.progressive_resize:
        check_progressive_resize(config, model, job.data)
    if config.dirac and fresh:  # before --whiten, which then sets the first conv its own way
        dirac.dirac_init(model)
    if config.whiten and fresh:  # from the training images the run sees, before any step
        sample = job.splits.train_images[: whitening.IMAGES]
        whitening.whiten_first_conv(model, prepare_batch(sample, job.data, channels_last=False))
    scaler = torch.amp.GradScaler("cuda") if job.dtype == torch.float16 else None  # fp16 gradients need loss scaling
    hooks: list[Hook] = []
    if config.lookahead:
        hooks.append(LookaheadHook(model, config.lookahead))
    if config.ema:
        hooks.append(EmaHook(model, config.ema))
        if fresh:
            warn_short_horizon(config.ema, job.total_steps)
    optimizer = build_optimizer(model, config, param_groups)
    replannable = config.time_budget is not None  # the budget's plan re-maps the schedule
    first_steps = job.phases[0].epochs * job.steps_per_epoch if job.phases else job.total_steps
    scheduler = create_scheduler(optimizer, config.schedule, first_steps, replannable)
    return TrainState(
        model=model,
        net=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        aux_weight=getattr(model, "aux_loss_weight", 0.3),
        hooks=hooks,
    )


def init_model(job: Job, model: nn.Module | None, fresh: bool) -> nn.Module:
    """`model`, or `config.model` built from the seed (then given --weights on a new run; a resumed run continues
    from its own checkpoint instead), on the device."""
    config, data = job.config, job.data
    given_model = model is not None  # then config.model is only its label, perhaps not a registered name
    torch.manual_seed(config.seed)  # the initial weights depend on the seed only
    if not given_model:  # build_new_model also decides the stem and records a network's code (config.model_code)
        model = build_new_model(config, data.num_classes, data.in_chans, data.image_size)
    elif fresh and config.model_code is None:  # a module given through the API, named by its file
        config.model_code = code_record(config.model, data.num_classes, data.in_chans)
    if fresh and config.weights and not given_model:
        try:
            load_weights(model, config.weights, model_name=config.model)
        except CnnlabError as error:
            hint = (
                (
                    f" (this run gives {config.model} the small-input stem for {data.image_size}px images; pass "
                    "--no-small-input to keep the stem the weights were trained with)"
                )
                if config.small_input
                else ""
            )
            raise CnnlabError(f"{error}{hint}") from None
    model = model.to(job.device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def create_run(job: Job, overwrite: bool) -> None:
    """A new run directory with config.json; process 0 names it (by its clock) and tells the others."""
    config = job.config

    def create() -> str:
        path = prepare_run_dir(Path(config.out) if config.out else default_run_dir(config), overwrite)
        config.out = str(path)
        keep_model_code(config, job.data, RunDir(path))
        RunDir(path).write_config(RunConfig.from_train_config(config, data_metadata(job.data), versions()))
        return str(path)

    job.run_dir = Path(job.world.broadcast_text(job.world.on_main(create)))
    config.out = str(job.run_dir)


def keep_model_code(config: TrainConfig, data: ImageDataset, run: RunDir) -> None:
    """A network in code (its record in `config.model_code`, made when it was built): a copy of its source in
    the run, and its hash remembered as this user's, so that the run later loads without --trust-code."""
    if config.model_code is not None:
        run.write_model_source(Path(config.model_code["origin"]))
        trust.remember(config.model_code["sha256"])


def restore(job: Job, state: TrainState, run_dir: Path) -> None:
    """Load the run's latest checkpoint into `state`; a run extended to more epochs gets them in config.json."""
    job.run_dir = run_dir
    # The phase the checkpoint was saved in is entered first: its model changes, optimizer and schedule.
    saved = checkpoint.load_checkpoint(
        run_dir, state.model, lambda saved: enter_phase(job, state, saved.get("phase", 0), announce=False)
    )
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    if state.scaler is not None and "scaler" in saved:
        state.scaler.load_state_dict(saved["scaler"])
    for hook in state.hooks:  # the saved config asked for the same hooks, so the checkpoint holds their states
        if hook.key is not None and hook.key in saved:
            hook.load_state_dict(saved[hook.key])
    if job.device.type == "cuda" and "cuda_rng" in saved:
        torch.cuda.set_rng_state(saved["cuda_rng"], job.device)
    state.epoch, state.step = saved["epoch"], saved["step_in_epoch"]
    state.metrics, state.best_val = saved["metrics"], saved["best_val_accuracy"]
    state.train_seconds = saved["train_seconds"]
    # Mid-epoch: the running sums of the epoch's first steps, so its metrics row equals an uninterrupted run's.
    so_far = saved.get("epoch_so_far") if state.step else None
    if so_far is not None and not job.world.is_main:  # the saved sums cover all processes: process 0 carries them
        so_far = {**so_far, "loss_sum": torch.zeros(()), "correct": torch.zeros((), dtype=torch.long), "seen": 0}
    state.epoch_so_far = so_far
    if RunDir(run_dir).read_config().epochs != job.config.epochs:  # extended: the record says how long it now is
        job.world.on_main(lambda: RunDir(run_dir).update_config(epochs=job.config.epochs))


def start(job: Job, state: TrainState, hooks: list[Hook]) -> None:
    """Announce the run, add the display hooks (TensorBoard, progress) and `hooks`, check the batch against batch
    norm, wrap the model for the steps."""
    config, world, data, splits = job.config, job.world, job.data, job.splits
    job.params = count_params(state.model)
    job.macs = count_macs(state.model, (data.in_chans, data.image_size, data.image_size))
    processes = f" x {world.size} processes" if world.enabled else ""
    job.progress.start(
        f"{config.model} on {data.name}: {job.params:,} params, {job.macs / 1e6:.2f} MMACs/image, "
        f"{len(splits.train_images)} train / {len(splits.val_images)} val / {len(splits.test_images)} test, "
        f"{config.epochs} epochs x {job.steps_per_epoch} steps, batch {config.batch_size}, "
        f"{config.optimizer} lr {config.lr:g}, {precision_name(job.dtype)} on {job.device}{processes} -> {job.run_dir}"
    )
    if config.tensorboard and world.is_main:  # a resumed run drops the events logged past its checkpoint
        log = tensorboard_log.TensorBoardLog(job.run_dir / tensorboard_log.LOG_DIR, steps_done(job, state))
        test = splits.test_images, splits.test_labels
        state.hooks.append(tensorboard_log.TensorBoardHook(log, config, *test, list(data.classes)))
    state.hooks += [ProgressHook(job.progress), *hooks]
    check_batch_norm_batch(job, state)
    state.net = world.wrap(state.model, config.sync_bn)  # DDP under torchrun, else the model itself
    if config.compile:  # the steps call the compiled graph; `model` (eval, checkpoints) stays the eager module
        state.net = torch.compile(state.net)
    state.model.train()


def check_batch_norm_batch(job: Job, state: TrainState) -> None:
    """Batch norm in training mode needs more than one value per channel: with one image per process, no layer
    may see a 1x1 map. Checked on the shapes before the first step, so the run stops before it trains."""
    images_per_process = job.config.batch_size // job.world.size
    fewest = fewest_batch_norm_values(state.model, (job.data.in_chans, job.data.image_size, job.data.image_size))
    if fewest is not None and images_per_process * fewest[1] == 1:
        fail(job, state, BatchNormBatchTooSmall(job.config.model, job.config.batch_size, job.world.size, *fewest))


def train_one_epoch(job: Job, state: TrainState, stop: list[str]) -> None:
    """The steps of epoch `state.epoch` from `state.step` on, each between the hooks' `before_step` and
    `after_step` (a checkpoint every `checkpoint_every` steps and on a stop signal, which then ends the run), up
    to the plan's last step; then `end_epoch`."""
    config = job.config
    seed = config.seed * 100_003 + state.epoch
    order = torch.randperm(len(job.splits.train_images), generator=torch.Generator().manual_seed(seed))
    tally = epoch_tally(job, state)
    while state.step < job.steps_per_epoch:
        call_hooks(state, "before_step", partial(step_event, job, state))
        index = order[state.step * config.batch_size : (state.step + 1) * config.batch_size]
        generator = torch.Generator().manual_seed(seed * 1_000_003 + state.step)
        loss, stopping = train_step(job, state, index, generator, tally, stop)
        state.step += 1
        running = {
            "loss": tally.loss_sum.item() / tally.seen,
            "accuracy": tally.correct.item() / tally.seen,
            "images_per_second": tally.seen * job.world.size / tally.elapsed(),
        }
        call_hooks(state, "after_step", partial(step_event, job, state, loss.item(), running))
        global_step = steps_done(job, state)
        if stopping or (config.checkpoint_every and global_step % config.checkpoint_every == 0):
            save(job, state, tally)
        if stopping:
            message = (
                f"stopped by {stopping[0]} at epoch {state.epoch + 1}, step {state.step}; checkpoint saved; "
                f"resume with: {resume_command(job)}"
            )
            fail(job, state, TrainingInterrupted(message, stopping[0]))
        if global_step >= planned_steps(job, state):
            break  # a time budget's plan ended mid-epoch
    end_epoch(job, state, tally)


def resume_command(job: Job) -> str:
    """The command that continues this run: a fine-tuned run's is finetune's (it rebuilds the prepared model)."""
    if RunDir(job.run_dir).has(FINETUNE):
        return f"cnnlab finetune --resume {job.run_dir}"
    return f"cnnlab train {job.config.model} --resume {job.run_dir}"


def epoch_tally(job: Job, state: TrainState) -> EpochTally:
    """Zero running sums, or a mid-epoch checkpoint's (once: the epoch it was saved in resumes)."""
    if state.epoch_so_far is None:
        return EpochTally(torch.zeros((), device=job.device), torch.zeros((), dtype=torch.long, device=job.device))
    so_far, state.epoch_so_far = state.epoch_so_far, None
    return EpochTally(
        so_far["loss_sum"].to(job.device), so_far["correct"].to(job.device), so_far["seen"], so_far["seconds"]
    )


def steps_done(job: Job, state: TrainState) -> int:
    return state.epoch * job.steps_per_epoch + state.step


def step_event(job: Job, state: TrainState, loss: float | None = None, running: dict | None = None) -> StepEvent:
    return StepEvent(
        epoch=state.epoch,
        step=state.step,
        global_step=steps_done(job, state),
        steps_per_epoch=job.steps_per_epoch,
        epochs=job.config.epochs,
        model=state.model,
        optimizer=state.optimizer,
        loss=loss,
        lr=state.optimizer.param_groups[0]["lr"],
        metrics=running or {},
    )


def call_hooks(state: TrainState, call: str, event: Callable[[], object]) -> None:
    """`call` on every hook in order, each with an event made fresh: a hook before it may have changed the plan."""
    for hook in state.hooks:
        getattr(hook, call)(event())


def train_step(
    job: Job, state: TrainState, index: torch.Tensor, generator: torch.Generator, tally: EpochTally, stop: list[str]
) -> tuple[torch.Tensor, list[str]]:
    """One optimizer step on the global batch `index` (this process's rows of it); returns (this process's loss,
    the stop signals any process received)."""
    config, rows = job.config, job.rows
    flip = config.augment if job.flip_sides is None else job.flip_sides[index] ^ bool(state.epoch % 2)
    x = prepare_batch(
        job.splits.train_images[index],
        job.data,
        config.channels_last,
        config.crop_padding if config.augment else 0,
        flip,
        generator,
        rows,
        job.color,
    )
    if config.progressive_resize:
        x = resize_batch(x, training_side(job, state), config.channels_last)
    y = job.splits.train_labels[index if rows is None else index[rows]]
    with autocast(job.dtype, job.device.type):
        loss, logits = classification_loss(state.net(x), y, config.label_smoothing, state.aux_weight)
    # Under torchrun every process must branch alike: the mean loss and any stop signal, agreed. In one process
    # these are `loss` and `stop` themselves.
    agreed_loss, stopping = job.world.agree(loss, stop)
    if not torch.isfinite(agreed_loss):
        stop_non_finite(job, state, "loss", agreed_loss.item())
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is None:
        loss.backward()
        # One fused norm over all gradients; an inf/NaN must not reach the weights (the step is skipped).
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()):
            stop_non_finite(job, state, "gradient", agreed_loss.item())
        state.optimizer.step()
    else:  # fp16: the scaler skips a step whose gradients overflowed and lowers its scale
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    state.scheduler.step()
    tally.loss_sum += loss.detach().float() * len(y)
    tally.correct += (logits.argmax(dim=1) == y).sum()
    tally.seen += len(y)
    return loss, stopping


def end_epoch(job: Job, state: TrainState, tally: EpochTally) -> None:
    """The epoch's metrics row (its sums over all processes, validation, and with test_every_epoch the test
    split), written to metrics.csv and TensorBoard; then the epoch-end checkpoint."""
    config, world, splits = job.config, job.world, job.splits
    epoch_seconds = tally.elapsed()
    state.train_seconds += epoch_seconds
    loss_sum, correct, seen = world.sum(tally.loss_sum, tally.correct, tally.seen)  # the epoch's totals, all processes
    world.sync_buffers(state.model)  # evaluate (everywhere) the batch-norm statistics process 0 saves
    val_loss, val_acc, _ = evaluate_split(job, state, splits.val_images, splits.val_labels)
    state.best_val = state.best_val if math.isnan(val_acc) else max(state.best_val, val_acc)
    row = {
        "epoch": state.epoch + 1,
        "train_loss": loss_sum.item() / max(seen, 1),
        "train_accuracy": correct.item() / max(seen, 1),
        "val_loss": val_loss,
        "val_accuracy": val_acc,
        "lr": state.optimizer.param_groups[0]["lr"],
        "epoch_seconds": epoch_seconds,
        "images_per_second": seen / epoch_seconds,
    }
    if job.phases:
        row["phase"] = state.phase + 1  # 1-based, as the curves label it
    if config.test_every_epoch:  # every process evaluates (a collective); `finish` reuses the last one
        state.last_test = evaluate_split(job, state, splits.test_images, splits.test_labels)
        row["test_loss"], row["test_accuracy"], _ = state.last_test
    state.metrics.append(row)
    world.on_main(lambda: RunDir(job.run_dir).write_metrics(state.metrics))
    ended = EpochEvent(state.epoch + 1, (state.epoch + 1) * job.steps_per_epoch, row, state.model, state.optimizer)
    call_hooks(state, "end_of_epoch", lambda: ended)
    state.epoch, state.step = state.epoch + 1, 0
    save(job, state)


def evaluate_split(
    job: Job, state: TrainState, images: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float, torch.Tensor]:
    """(loss, accuracy, predictions) of the evaluated weights (the EMA's with --ema) over a whole split; under
    torchrun each process takes a shard and all get the totals, so every process must call this."""
    evaluate = partial(
        evaluate_arrays,
        state.evaluated,
        data=job.data,
        dtype=job.dtype,
        channels_last=job.config.channels_last,
        flip_tta=job.config.tta,
        shift_tta=job.config.tta_shift,
    )
    return job.world.evaluate(evaluate, images, labels)


def save(job: Job, state: TrainState, tally: EpochTally | None = None) -> None:
    """Checkpoint `state` after `state.step` steps of `state.epoch`; mid-epoch with the epoch's running sums
    (`tally`, added up over processes). Every process calls this; process 0 alone writes."""
    config, world = job.config, job.world
    so_far = None
    if tally is not None:
        loss_sum, correct, seen = world.sum(tally.loss_sum, tally.correct, tally.seen)
        so_far = {"loss_sum": loss_sum.cpu(), "correct": correct.cpu(), "seen": seen, "seconds": tally.elapsed()}
    saved = {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "epoch": state.epoch,
        "step_in_epoch": state.step,
        "metrics": state.metrics,
        "best_val_accuracy": state.best_val,
        "train_seconds": state.train_seconds,
        "model": config.model,
        "dataset": config.dataset,
        "epoch_so_far": so_far,
        "phase": state.phase,
    }
    if state.scaler is not None:
        saved["scaler"] = state.scaler.state_dict()
    for hook in state.hooks:
        if hook.key is not None:
            saved[hook.key] = hook.state_dict()
    if job.device.type == "cuda":
        saved["cuda_rng"] = torch.cuda.get_rng_state(job.device)
    step = state.epoch * job.steps_per_epoch + state.step

    def write() -> None:
        try:
            checkpoint.save_checkpoint(job.run_dir, step, state.model, saved, config.keep_checkpoints)
        except CnnlabError as error:  # e.g. a full disk: the files already there were only ever replaced whole
            raise CnnlabError(
                f"saving the checkpoint of step {step} failed: {error}; the earlier checkpoints in "
                f"{job.run_dir / 'checkpoints'} are intact; resume with: {resume_command(job)}"
            ) from None

    world.on_main(write)


def fail(job: Job, state: TrainState, error: CnnlabError) -> NoReturn:
    """Record the failure in results.json (the checkpoints stay as they were) and raise `error`."""
    status = "interrupted" if isinstance(error, TrainingInterrupted) else "failed"
    if job.world.is_main:
        record = {"status": status, "error": str(error), "metrics": state.metrics, "run_dir": str(job.run_dir)}
        RunDir(job.run_dir).write_results(Results(job.config.model, job.data.name, record))
    for hook in state.hooks:
        hook.close()
    if not any(isinstance(hook, ProgressHook) for hook in state.hooks):  # failed before the display hook came
        job.progress.finish("")
    raise error


def stop_non_finite(job: Job, state: TrainState, quantity: str, loss: float) -> NoReturn:
    checkpoints = job.run_dir / "checkpoints"
    kept = (
        f"the last good checkpoint is kept in {checkpoints}"
        if (checkpoints / "latest").exists()
        else "no checkpoint had been written yet"
    )
    fail(
        job,
        state,
        NonFiniteLoss(quantity, state.epoch + 1, state.step + 1, loss, job.config.lr, kept, state.metrics),
    )


def finish(job: Job, state: TrainState, engine: Engine) -> dict:
    """The final test pass (or, with test_every_epoch, the last epoch's, which evaluated these same weights),
    results.json, model.safetensors and curves.png, then the hooks' `end_of_run`; returns the results."""
    config, world, data, splits = job.config, job.world, job.data, job.splits
    test = state.last_test
    if test is None:  # same on every process: all ran the same epochs, so all call world.evaluate here or none
        test = evaluate_split(job, state, splits.test_images, splits.test_labels)
    test_loss, test_acc, test_predicted = test
    images_trained = sum(r["images_per_second"] * r["epoch_seconds"] for r in state.metrics)
    engine.results = {
        "model": config.model,
        "dataset": data.name,
        "params": job.params,
        "macs": job.macs,
        "epochs": config.epochs,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "best_val_accuracy": state.best_val,
        "final_val_accuracy": state.metrics[-1]["val_accuracy"] if state.metrics else float("nan"),
        "train_seconds": state.train_seconds,
        "train_images_per_second": images_trained / max(state.train_seconds, 1e-9),
        "batch_size": config.batch_size,
        "lr": config.lr,
        "optimizer": config.optimizer,
        "precision": precision_name(job.dtype),
        "seed": config.seed,
        "status": "completed",
        "run_dir": str(job.run_dir),
        "device": str(job.device),
        "processes": world.size,
    }
    world.on_main(lambda: write_files(job, state, engine))
    ended = RunEvent(engine.results, state.metrics, state.evaluated, test_predicted, steps_done(job, state))
    call_hooks(state, "end_of_run", lambda: ended)
    return engine.results


def write_files(job: Job, state: TrainState, engine: Engine) -> None:
    """Process 0's files at the end of a run: the weights, results.json and the curves."""
    from cnnlab.plots import plot_curves  # matplotlib loads only when a run finishes

    config, data, run_dir = job.config, job.data, job.run_dir
    checkpoint.save_weights(
        state.evaluated.to(memory_format=torch.contiguous_format),
        run_dir / "model.safetensors",
        metadata={"model": config.model, "dataset": data.name},
    )
    RunDir(run_dir).write_results(engine.results)
    names = [phase.name for phase in job.phases]
    plot_curves(state.metrics, RunDir(run_dir).file(CURVES), title=f"{config.model} on {data.name}", phase_names=names)
