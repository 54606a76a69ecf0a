"""The training loop: data in memory as uint8, per-batch normalisation and augmentation, one code path for
every model in the zoo.

Randomness is derived, not carried: epoch e shuffles with a generator seeded from (seed, e), and step s of that
epoch augments with one seeded from (seed, e, s). A run resumed mid-epoch therefore sees exactly the batches and
crops an uninterrupted run sees, with no generator state to save beyond torch's global one (dropout).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import platform
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.data import ImageDataset, load_dataset, normalize, random_crop, random_hflip, split_validation
from cnnlab.errors import CnnlabError
from cnnlab.inspect import count_macs, count_params
from cnnlab.models.weights import load_weights
from cnnlab.registry import create_model, model_info
from cnnlab.training import checkpoint, distributed, tensorboard_log
from cnnlab.training.config import TrainConfig, resolve
from cnnlab.training.device import check_precision, precision_name, resolve_device
from cnnlab.training.progress import Progress

METRIC_COLUMNS = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds", "images_per_second",
)
TEST_COLUMNS = ("test_loss", "test_accuracy")  # per-epoch columns of runs with test_every_epoch


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
            f"--batch-size {config.batch_size} is larger than the training split ({len(train_x)} images); use a smaller batch"
        )
    return Splits(train_x, train_y, val_x, val_y, data.test_images, data.test_labels)


def prepare_batch(
    images: torch.Tensor,
    data: ImageDataset,
    channels_last: bool,
    crop_padding: int = 0,
    flip: bool = False,
    generator: torch.Generator | None = None,
    keep: slice | None = None,
) -> torch.Tensor:
    """uint8 images -> normalised float32, randomly shifted by up to `crop_padding` px and flipped if `flip`.

    `keep`: only these rows of the batch (one process's share of a global batch). Augmentation still draws its
    random numbers for the whole batch, so each kept image gets the crop and flip it gets in one process."""
    augmenting = bool(crop_padding) or (flip and data.hflip)
    if keep is not None and not augmenting:
        images = images[keep]
    x = normalize(images, data.mean, data.std)  # uint8 [B, C, H, W] -> float32
    if crop_padding:
        x = random_crop(x, crop_padding, generator)
    if flip and data.hflip:
        x = random_hflip(x, generator)
    if keep is not None and augmenting:
        x = x[keep]
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# ---------------------------------------------------------------------------------------------- model and optimiser
@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware: AVX512-BF16 or AMX on x86, the BF16 extension on Arm (Linux's
    /proc/cpuinfo flags). torch's `mkldnn._is_mkldnn_bf16_supported()` also says yes for plain AVX-512, where
    oneDNN emulates bf16; measured on such a Xeon, bf16 autocast trained resnet20 2.8x slower than fp32
    (docs/performance.md). Without /proc/cpuinfo (macOS, Windows) the answer is no: fp32 is the safe default."""
    try:
        return cpuinfo_has_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def cpuinfo_has_bf16(cpuinfo: str) -> bool:
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def autocast_dtype(precision: str, device_type: str = "cpu") -> torch.dtype | None:
    """bf16 when asked for, or for "auto" when the CPU computes bf16 natively (AVX512-BF16/AMX); else fp32. On CUDA
    "auto" is bf16 where the GPU has it (Ampere on), else fp16; "fp16" is CUDA's only (`device.check_precision`),
    so elsewhere (evaluating a GPU run on a laptop) it computes in fp32."""
    if precision == "bf16":
        return torch.bfloat16
    if device_type == "cuda" and precision in ("auto", "fp16"):
        return torch.bfloat16 if precision == "auto" and torch.cuda.is_bf16_supported() else torch.float16
    if precision == "auto" and device_type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(dtype: torch.dtype | None, device_type: str = "cpu"):
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else nullcontext()


ParamGroups = Callable[[nn.Module], list[dict]]  # model -> [{"params": [...], "lr": peak lr}, ...]


def build_optimizer(model: nn.Module, config: TrainConfig, param_groups: ParamGroups | None = None) -> torch.optim.Optimizer:
    """`param_groups(model)` gives parameter sets with their own peak "lr" (e.g. a backbone at a tenth of the
    head's); by default one set, every parameter, at `config.lr`. Frozen parameters (requires_grad=False) are left out."""
    groups = []
    for group in param_groups(model) if param_groups else [{"params": model.parameters()}]:
        params = [p for p in group["params"] if p.requires_grad]
        lr = group.get("lr", config.lr)
        # Weight decay on conv/linear weights only: decaying BN scales and biases only fights the normalisation.
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay, "lr": lr},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr}]
    if not any(group["params"] for group in groups):
        raise CnnlabError("nothing to train: every parameter of the model is frozen")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, foreach=True)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999), foreach=True)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """A per-step schedule. onecycle: warm up for 25% of the steps, then cosine down to lr/1e4 (Smith 2018).

    OneCycleLR's warm-up ends at step pct_start * total_steps - 1, and it divides by that: a run of 4 steps or
    fewer warms up for 1.5 steps instead (a 1-step run keeps its lr constant)."""
    if config.schedule == "onecycle" and total_steps > 1:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total_steps,
            pct_start=max(0.25, 1.5 / total_steps), cycle_momentum=False,
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "step":
        milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def classification_loss(output, targets: torch.Tensor, label_smoothing: float, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the logits; a tuple output (GoogLeNet's train mode) is (logits, *aux_logits), each auxiliary
    head adding `aux_weight` x its own loss, as in Szegedy et al. 2014. Returns (loss, logits)."""
    logits, *aux = output if isinstance(output, tuple) else (output,)
    loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    for aux_logits in aux:
        loss = loss + aux_weight * F.cross_entropy(aux_logits, targets, label_smoothing=label_smoothing)
    return loss, logits


def check_flip_tta(data: ImageDataset) -> None:
    if not data.hflip:
        raise CnnlabError(f"test-time flips need label-preserving horizontal flips, which {data.name} does not "
                          "have (a mirrored image can belong to another class): drop --tta")


@torch.no_grad()
def evaluate_arrays(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    data: ImageDataset,
    batch_size: int = 512,
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
    flip_tta: bool = False,
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predicted labels) over uint8 images, in eval mode. flip_tta: classify each image by
    the mean of its own and its mirror image's logits (test-time augmentation, as airbench does)."""
    if flip_tta:
        check_flip_tta(data)
    was_training = model.training
    model.eval()
    total_loss, predictions = 0.0, []
    for start in range(0, len(images), batch_size):
        x = prepare_batch(images[start : start + batch_size], data, channels_last)
        y = labels[start : start + batch_size]
        with autocast(dtype, images.device.type):
            logits = model(x)
            if flip_tta:
                logits = (logits.float() + model(x.flip(3)).float()) / 2  # flip(3): the width axis of [B, C, H, W]
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    if len(images) == 0:
        return float("nan"), float("nan"), torch.empty(0, dtype=torch.long)
    predicted = torch.cat(predictions)
    return total_loss / len(images), (predicted == labels).float().mean().item(), predicted


# ------------------------------------------------------------------------------------------------------ run files
def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "cnnlab": cnnlab.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def data_metadata(data: ImageDataset) -> dict:
    """What `predict` needs to preprocess an image without loading the dataset."""
    return {"name": data.name, "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std),
            "in_chans": data.in_chans, "image_size": data.image_size}


def default_run_dir(config: TrainConfig) -> Path:
    dataset = config.dataset.replace(":", "-").replace("/", "_")
    return Path("runs") / f"{config.model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}"


RUN_FILES = ("config.json", "metrics.csv", "results.json", "model.safetensors", "curves.png", "eval.json", "confusion.png")


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    path = Path(path)
    if (path / "config.json").exists() and not overwrite:
        raise CnnlabError(f"{path} already holds a run; pass --resume {path} to continue it or --overwrite to replace it")
    try:
        if (path / "config.json").exists():  # --overwrite: the old run's files go, or its later checkpoints would win
            shutil.rmtree(path / "checkpoints", ignore_errors=True)
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CnnlabError(f"cannot write to run directory {path}: {error.strerror or error}") from error
    return path


def write_metrics(path: Path, rows: list[dict]) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS + (TEST_COLUMNS if rows and "test_accuracy" in rows[0] else ()))
    writer.writeheader()
    writer.writerows(rows)
    checkpoint.atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode()))


# ------------------------------------------------------------------------------------------------------- training
class TrainingInterrupted(CnnlabError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the message says how to resume. The CLI exits with 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM), the shell's convention for "stopped by a signal"."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.exit_code = 128 + signal.Signals[signal_name].value


@contextmanager
def stop_requests():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step, so it can save before exiting."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if requested:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        requested.append(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wants_small_input(model: str, image_size: int) -> bool:
    """ImageNet-style models (default input >= 64 px) get the CIFAR-style stem on small images, so their early
    strides do not shrink a 28x28 image to nothing."""
    return model_info(model).input_size[1] >= 64 and image_size < 64


def build_model(config: TrainConfig, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """The run's model; `config.small_input` must be resolved (True/False) already."""
    kwargs = dict(config.model_kwargs)
    if config.small_input:
        kwargs["small_input"] = True
    return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)


def run(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    data: ImageDataset | None = None,
    model: nn.Module | None = None,
    param_groups: ParamGroups | None = None,
) -> dict:
    """Train `config.model` on `config.dataset`, write the run directory, and return the results dict.

    `model`: train this module (trained in place) instead of building `config.model`; `config.model` still names
    its architecture in the run files, and `config.weights` is not applied. For experiments and fine-tuning (a
    pretrained backbone, adapters, a depth the registry has no name for). `param_groups`: see `build_optimizer`.
    """
    if resume is not None and model is not None:
        raise CnnlabError("a run trained on a given model cannot be resumed by rebuilding it; resume without `model`")
    if resume is not None:
        run_dir = Path(resume)
        saved = TrainConfig.from_dict(checkpoint.read_json(run_dir / "config.json"))
        for name in ("model", "dataset"):
            if getattr(config, name) not in (None, getattr(saved, name)):
                raise CnnlabError(f"cannot resume {run_dir}: it trained {name} '{getattr(saved, name)}', not '{getattr(config, name)}'")
        if config.device is not None:  # where a run computes is no part of it: --device may change on resume
            saved.device = config.device
        config = saved
    config = resolve(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, distributed.local_rank())
    check_precision(config.precision, device)
    world = distributed.setup(device, config.batch_size, config.sync_bn)  # one process unless torchrun started more
    if config.tensorboard:
        tensorboard_log.require()
    data = data if data is not None else load_dataset(config.dataset, config.data_dir)
    if config.tta:  # refused before training, not after it
        check_flip_tta(data)
    splits = make_splits(data, config)
    if device.type != "cpu":  # uploaded once, still uint8; batches are normalised and augmented on the device
        splits = Splits(*(getattr(splits, f.name).to(device) for f in fields(Splits)))
    given_model = model is not None  # then config.model is only its label, perhaps not a registered name
    if config.small_input is None and not given_model:
        config.small_input = wants_small_input(config.model, data.image_size)
    torch.manual_seed(config.seed)  # the initial weights depend on the seed only
    if not given_model:
        model = build_model(config, data.num_classes, data.in_chans, data.image_size)
    if resume is None and config.weights and not given_model:  # a resumed run continues from its own checkpoint instead
        try:
            load_weights(model, config.weights, model_name=config.model)
        except CnnlabError as error:
            hint = (f" (this run gives {config.model} the small-input stem for {data.image_size}px images; pass "
                    "--no-small-input to keep the stem the weights were trained with)") if config.small_input else ""
            raise CnnlabError(f"{error}{hint}") from None
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(config.precision, device.type)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None  # fp16 gradients need loss scaling
    # The weight average (--ema): updated after every optimizer step; evaluation and model.safetensors use it,
    # checkpoints hold both it and the raw weights (which the optimizer continues from on resume).
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema),
                                               use_buffers=True) if config.ema else None)
    evaluated = ema.module if ema is not None else model

    steps_per_epoch = len(splits.train_images) // config.batch_size  # the last partial batch is dropped
    total_steps = steps_per_epoch * config.epochs
    if config.ema and resume is None and total_steps < 1 / (1 - config.ema):
        # The average weighs the initial weights by ema**steps: past its horizon it mostly holds the random init.
        shorter = 1 - 10 / max(total_steps, 1)  # a horizon of a tenth of the run
        advice = f"use a decay of at most {shorter:.3g}" if shorter > 0 else "drop --ema"
        warnings.warn(f"--ema {config.ema:g} averages over about {1 / (1 - config.ema):,.0f} steps, but this run has "
                      f"{total_steps}: its average stays close to the initial weights; {advice}", stacklevel=2)
    optimizer = build_optimizer(model, config, param_groups)
    scheduler = build_scheduler(optimizer, config, total_steps)
    aux_weight = getattr(model, "aux_loss_weight", 0.3)

    if resume is None:
        def create_run_dir() -> str:
            path = prepare_run_dir(Path(config.out) if config.out else default_run_dir(config), overwrite)
            config.out = str(path)
            checkpoint.write_json(path / "config.json", {**config.to_dict(), "data": data_metadata(data), "versions": versions()})
            return str(path)

        run_dir = Path(world.broadcast_text(world.on_main(create_run_dir)))  # process 0 names it (its clock)
        config.out = str(run_dir)
        start_epoch, start_step, metrics, best_val, train_seconds = 0, 0, [], 0.0, 0.0
        epoch_so_far = None
    else:
        state = checkpoint.load_checkpoint(run_dir, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if ema is not None:  # the saved config has --ema, so every checkpoint of the run holds the average
            ema.load_state_dict(state["ema"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        metrics, best_val, train_seconds = state["metrics"], state["best_val_accuracy"], state["train_seconds"]
        # Mid-epoch: the running sums of the epoch's first steps, so its metrics row equals an uninterrupted run's.
        epoch_so_far = state.get("epoch_so_far") if start_step else None
        if epoch_so_far is not None and not world.is_main:  # the saved sums cover all processes: process 0 carries them
            epoch_so_far = {**epoch_so_far, "loss_sum": torch.zeros(()), "correct": torch.zeros((), dtype=torch.long), "seen": 0}

    params, macs = count_params(model), count_macs(model, (data.in_chans, data.image_size, data.image_size))
    progress = Progress(quiet=quiet or not world.is_main)  # one process speaks for all
    progress.start(f"{config.model} on {data.name}: {params:,} params, {macs / 1e6:.2f} MMACs/image, "
                   f"{len(splits.train_images)} train / {len(splits.val_images)} val / {len(splits.test_images)} test, "
                   f"{config.epochs} epochs x {steps_per_epoch} steps, batch {config.batch_size}, {config.optimizer} lr {config.lr:g}, "
                   f"{precision_name(dtype)} on {device}{f' x {world.size} processes' if world.enabled else ''} -> {run_dir}")
    board = None  # TensorBoard, on process 0; a resumed run drops the events its predecessor logged past the checkpoint
    if config.tensorboard:
        board = world.on_main(lambda: tensorboard_log.TensorBoardLog(run_dir / tensorboard_log.LOG_DIR,
                                                                     start_epoch * steps_per_epoch + start_step))

    def save(epoch: int, step_in_epoch: int, epoch_so_far: dict | None = None) -> None:
        # Every process calls this (the running sums are added up over processes); process 0 alone writes.
        if epoch_so_far is not None:
            loss_sum, correct, seen = world.sum(epoch_so_far["loss_sum"], epoch_so_far["correct"], epoch_so_far["seen"])
            epoch_so_far = {**epoch_so_far, "loss_sum": loss_sum.cpu(), "correct": correct.cpu(), "seen": seen}
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "epoch": epoch, "step_in_epoch": step_in_epoch, "metrics": metrics, "best_val_accuracy": best_val,
                 "train_seconds": train_seconds, "model": config.model, "dataset": config.dataset,
                 "epoch_so_far": epoch_so_far}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if ema is not None:
            state["ema"] = ema.state_dict()
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        step = epoch * steps_per_epoch + step_in_epoch

        def write() -> None:
            try:
                checkpoint.save_checkpoint(run_dir, step, model, state, config.keep_checkpoints)
            except CnnlabError as error:  # e.g. a full disk: the files already there were only ever replaced whole
                raise CnnlabError(f"saving the checkpoint of step {step} failed: {error}; the earlier checkpoints in "
                                  f"{run_dir / 'checkpoints'} are intact; resume with: cnnlab train {config.model} --resume {run_dir}") from None

        world.on_main(write)

    def fail(message: str, error: CnnlabError | None = None):
        """Record the failure in results.json (the checkpoints stay as they were) and stop with `message`."""
        error = error or CnnlabError(message)
        status = "interrupted" if isinstance(error, TrainingInterrupted) else "failed"
        if world.is_main:
            checkpoint.write_json(run_dir / "results.json", {"model": config.model, "dataset": data.name, "status": status,
                                                              "error": message, "metrics": metrics, "run_dir": str(run_dir)})
        if board is not None:
            board.close()
        progress.finish("")
        raise error

    def stop_non_finite(what: str, epoch: int, step: int) -> None:
        kept = (f"the last good checkpoint is kept in {run_dir / 'checkpoints'}"
                if (run_dir / "checkpoints" / "latest").exists() else "no checkpoint had been written yet")
        fail(f"{what} at epoch {epoch + 1}, step {step + 1}; {kept}; try a lower --lr (now {config.lr:g})")

    def evaluate_on(images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        return evaluate_arrays(evaluated, images, labels, data, dtype=dtype, channels_last=config.channels_last,
                               flip_tta=config.tta)

    net = world.wrap(model, config.sync_bn)  # what the steps call: DDP under torchrun, else the model itself
    if config.compile:  # the steps call the compiled graph; `model` (eval, checkpoints) stays the eager module
        net = torch.compile(net)
    rows = world.rows(config.batch_size)  # this process's share of each global batch (None: all of it)
    model.train()
    with stop_requests() as stop:
        for epoch in range(start_epoch, config.epochs):
            order = torch.randperm(len(splits.train_images), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device), 0
            seconds_before = 0.0  # time this epoch already ran in an interrupted process
            if epoch_so_far is not None:
                loss_sum, correct = epoch_so_far["loss_sum"].to(device), epoch_so_far["correct"].to(device)
                seen = epoch_so_far["seen"]
                seconds_before, epoch_so_far = epoch_so_far["seconds"], None
            epoch_start = time.perf_counter()
            progress.epoch(epoch + 1, config.epochs, steps_per_epoch, start_step)
            for step in range(start_step, steps_per_epoch):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                generator = torch.Generator().manual_seed((config.seed * 100_003 + epoch) * 1_000_003 + step)
                x = prepare_batch(splits.train_images[index], data, config.channels_last,
                                  config.crop_padding if config.augment else 0, config.augment, generator, rows)
                y = splits.train_labels[index if rows is None else index[rows]]
                with autocast(dtype, device.type):
                    try:
                        output = net(x)
                    except ValueError as error:  # F.batch_norm on a batch of one image at 1x1
                        if "more than 1 value per channel" not in str(error):
                            raise
                        fail(f"{config.model} cannot train with --batch-size {config.batch_size}: a batch-norm layer gets "
                             f"one value per channel (a 1x1 feature map of one image), too few for batch statistics; "
                             f"use --batch-size 2 or more")
                    loss, logits = classification_loss(output, y, config.label_smoothing, aux_weight)
                # Under torchrun every process must branch alike: the mean loss and any stop signal, agreed. In one
                # process these are `loss` and `stop` themselves.
                agreed_loss, stopping = world.agree(loss, stop)
                if not torch.isfinite(agreed_loss):
                    stop_non_finite(f"the loss became {agreed_loss.item()}", epoch, step)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    # One fused norm over all gradients; an inf/NaN must not reach the weights (the step is skipped).
                    grads = [p.grad for p in model.parameters() if p.grad is not None]
                    if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()):
                        stop_non_finite("a gradient became non-finite", epoch, step)
                    optimizer.step()
                else:  # fp16: the scaler skips a step whose gradients overflowed and lowers its scale
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                loss_sum += loss.detach().float() * len(y)
                correct += (logits.argmax(dim=1) == y).sum()
                seen += len(y)
                elapsed = seconds_before + time.perf_counter() - epoch_start
                progress.step(loss_sum.item() / seen, correct.item() / seen, seen * world.size / elapsed)
                global_step = epoch * steps_per_epoch + step + 1
                if board is not None:
                    board.step(global_step, loss.item(), optimizer.param_groups[0]["lr"])
                if stopping or (config.checkpoint_every and global_step % config.checkpoint_every == 0):
                    save(epoch, step + 1, {"loss_sum": loss_sum, "correct": correct, "seen": seen, "seconds": elapsed})
                if stopping:
                    message = (f"stopped by {stopping[0]} at epoch {epoch + 1}, step {step + 1}; checkpoint saved; resume with: "
                               f"cnnlab train {config.model} --resume {run_dir}")
                    fail(message, TrainingInterrupted(message, stopping[0]))
            epoch_seconds = seconds_before + time.perf_counter() - epoch_start
            train_seconds += epoch_seconds
            start_step = 0
            loss_sum, correct, seen = world.sum(loss_sum, correct, seen)  # the epoch's totals over all processes
            world.sync_buffers(model)  # evaluate (everywhere) the batch-norm statistics process 0 saves
            val_loss, val_acc, _ = world.evaluate(evaluate_on, splits.val_images, splits.val_labels)
            best_val = best_val if math.isnan(val_acc) else max(best_val, val_acc)
            metrics.append({
                "epoch": epoch + 1, "train_loss": loss_sum.item() / max(seen, 1), "train_accuracy": correct.item() / max(seen, 1),
                "val_loss": val_loss, "val_accuracy": val_acc, "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": epoch_seconds, "images_per_second": seen / epoch_seconds,
            })
            if config.test_every_epoch:
                metrics[-1]["test_loss"], metrics[-1]["test_accuracy"], _ = world.evaluate(
                    evaluate_on, splits.test_images, splits.test_labels)
            progress.end_epoch(metrics[-1])
            world.on_main(lambda: write_metrics(run_dir / "metrics.csv", metrics))
            if board is not None:
                board.epoch((epoch + 1) * steps_per_epoch, metrics[-1])
            save(epoch + 1, 0)

    test_loss, test_acc, test_predicted = world.evaluate(evaluate_on, splits.test_images, splits.test_labels)
    images_trained = sum(r["images_per_second"] * r["epoch_seconds"] for r in metrics)
    results = {
        "model": config.model, "dataset": data.name, "params": params, "macs": macs, "epochs": config.epochs,
        "test_accuracy": test_acc, "test_loss": test_loss, "best_val_accuracy": best_val,
        "final_val_accuracy": metrics[-1]["val_accuracy"] if metrics else float("nan"),
        "train_seconds": train_seconds, "train_images_per_second": images_trained / max(train_seconds, 1e-9),
        "batch_size": config.batch_size, "lr": config.lr, "optimizer": config.optimizer, "precision": precision_name(dtype),
        "seed": config.seed, "status": "completed", "run_dir": str(run_dir), "device": str(device), "processes": world.size,
    }

    def write_results() -> None:
        checkpoint.save_weights(evaluated.to(memory_format=torch.contiguous_format), run_dir / "model.safetensors",
                                metadata={"model": config.model, "dataset": data.name})
        checkpoint.write_json(run_dir / "results.json", results)
        from cnnlab.training.plots import plot_curves

        plot_curves(metrics, run_dir / "curves.png", title=f"{config.model} on {data.name}")
        if board is not None:
            board.misclassified(splits.test_images, splits.test_labels, test_predicted, list(data.classes), total_steps)
            board.hparams(config.to_dict(), results)
            board.close()

    world.on_main(write_results)
    progress.finish(f"test accuracy {test_acc:.2%} (loss {test_loss:.4f}) in {train_seconds:.1f}s of training -> {run_dir}")
    return results
