"""Data-parallel training on PyTorch's own engine: `torchrun --nproc_per_node N [--nnodes M ...] -m cnnlab train ...`.

torchrun starts the command once per process with RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address)
in its environment. `setup` reads them and joins the process group: gloo for CPU processes, nccl for CUDA ones.
Without them (a plain `cnnlab train`) it returns a one-process `World` whose methods hand their arguments straight
back, so the single-process loop does no extra work and no collective.

The arithmetic does not depend on the process count. `--batch-size` is the global batch B: every process walks the
same seeded permutation and takes its B/W rows of each global batch (augmentation draws its random numbers for the
whole batch, then keeps those rows), so a global step sees the images and crops of one process, and DDP's gradient
average over processes equals the gradient of one process's mean loss. Batch-norm statistics are per process
unless `--sync-bn`. Evaluation splits each split across the processes and sums the counts, so metrics cover it all.

Process 0 alone prints and writes the run directory, checkpoints and logs; every decision that must be the same
everywhere (a non-finite loss, a stop signal, a failed write on process 0) is agreed through a collective, or a
process that stopped alone would leave the others waiting forever.
"""

from __future__ import annotations

import atexit
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.safeload import first_line

T = TypeVar("T")
STOP_SIGNALS = ("SIGINT", "SIGTERM")  # the names the trainer's stop flag holds

# The last few collectives' work handles, held so that a gloo worker thread never drops the last reference to one.
# The work holds our tensors, and releasing a tensor that has a Python object takes the GIL: a worker that asks for
# it while the interpreter is finalizing is ended mid-destructor, std::terminate aborts the process (SIGABRT), and
# torchrun reports a run that finished as failed. Held here, the handles are freed by the main thread (at the
# latest when the interpreter clears this module); older ones go mid-run, while the main thread still yields the GIL.
_RECENT_WORK: deque = deque(maxlen=16)


def _collective(operation: Callable, *args) -> None:
    """`operation(*args)` (a torch.distributed collective) run to completion, its work handle kept (above)."""
    work = operation(*args, async_op=True)
    work.wait()
    _RECENT_WORK.append(work)


def environment() -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) as torchrun sets them; (0, 1, 0) outside torchrun."""
    try:
        return tuple(
            int(os.environ.get(name, default)) for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))
        )  # type: ignore[return-value]
    except ValueError:
        raise CnnlabError(
            f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them), got "
            f"{[os.environ.get(n) for n in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')]}"
        ) from None


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------------------------------------ sharding
    def rows(self, batch_size: int) -> slice | None:
        """This process's rows of a global batch; None (all of them) in one process."""
        if not self.enabled:
            return None
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def wrap(self, model: nn.Module, sync_bn: bool) -> nn.Module:
        """The module the training steps call: DDP around `model` (whose batch-norm layers become SyncBatchNorm
        with `sync_bn`; the conversion keeps the Parameter objects, so an optimizer built on them still steps
        them), or `model` itself in one process. Save and evaluate `model`, not the wrapper."""
        if not self.enabled:
            return model
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # ----------------------------------------------------------------------------------------- agreeing on steps
    def agree(self, loss: torch.Tensor, stop: list[str]) -> tuple[torch.Tensor, list[str]]:
        """(mean loss over processes, the stop signals any process received): one all-reduce of three numbers per
        step, so every process takes the same branch. In one process: `loss` and the live `stop` list as given."""
        if not self.enabled:
            return loss, stop
        flags = torch.tensor([float(name in stop) for name in STOP_SIGNALS], dtype=torch.float64, device=loss.device)
        packed = torch.cat([loss.detach().to(torch.float64).view(1), flags])
        _collective(dist.all_reduce, packed)
        return packed[0] / self.size, [name for name, count in zip(STOP_SIGNALS, packed[1:].tolist()) if count > 0]

    def sum(self, *values):
        """Each value (a tensor scalar or a number) summed over processes, with its own type; as given in one
        process."""
        if not self.enabled:
            return values
        packed = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        _collective(dist.all_reduce, packed)
        return tuple(
            torch.tensor(total.item(), dtype=v.dtype, device=v.device)
            if isinstance(v, torch.Tensor)
            else type(v)(total.item())
            for v, total in zip(values, packed)
        )

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every process process 0's buffers (batch-norm running statistics drift apart per process between
        DDP's per-forward broadcasts), so all evaluate the model that process 0 saves."""
        if self.enabled:
            for buffer in model.buffers():
                _collective(dist.broadcast, buffer, 0)

    def evaluate(
        self,
        evaluate: Callable[[torch.Tensor, torch.Tensor], tuple[float, float, torch.Tensor]],
        images: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[float, float, torch.Tensor]:
        """`evaluate(images, labels)` -> (mean loss, accuracy, predictions) over the whole split: each process
        takes a contiguous shard, the sums are all-reduced and the predictions gathered, in split order."""
        if not self.enabled:
            return evaluate(images, labels)
        shards = torch.arange(len(images)).tensor_split(self.size)
        mine = shards[self.rank].to(images.device)
        loss, accuracy, predicted = evaluate(images[mine], labels[mine]) if len(mine) else (0.0, 0.0, labels[:0])
        n = len(mine)
        loss_sum, correct, total = self.sum(loss * n if n else 0.0, accuracy * n if n else 0.0, n)
        longest = max(len(s) for s in shards)
        padded = torch.full((longest,), -1, dtype=torch.long, device=self.device)
        padded[:n] = predicted.to(self.device)
        gathered = [torch.empty_like(padded) for _ in range(self.size)]
        _collective(dist.all_gather, gathered, padded)
        predictions = torch.cat([g[: len(s)] for g, s in zip(gathered, shards)]).to(labels.device)
        if total == 0:
            return float("nan"), float("nan"), predictions
        return loss_sum / total, round(correct) / total, predictions

    # ----------------------------------------------------------------------------------- process 0's files
    def on_main(self, action: Callable[[], T]) -> T | None:
        """Run `action` (writing files) on process 0 only and return its result there, None elsewhere. A
        CnnlabError it raises is raised on every process, so none waits at its next collective for one that quit."""
        if not self.enabled:
            return action()
        result, error = None, None
        if self.is_main:
            try:
                result = action()
            except CnnlabError as failure:
                error = str(failure)
        error = self.broadcast_text(error)
        if error is not None:
            raise CnnlabError(error)
        return result

    def broadcast_text(self, text: str | None) -> str | None:
        """Process 0's `text` on every process, as UTF-8 bytes in a tensor (no pickle crosses the wire)."""
        if not self.enabled:
            return text
        data = b"" if text is None else b"\x01" + text.encode()
        size = torch.tensor([len(data)], dtype=torch.long, device=self.device)
        _collective(dist.broadcast, size, 0)
        if size.item() == 0:
            return None
        buffer = (
            torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.device)
            if self.is_main
            else torch.empty(int(size.item()), dtype=torch.uint8, device=self.device)
        )
        _collective(dist.broadcast, buffer, 0)
        return buffer.cpu().numpy().tobytes()[1:].decode()


def rank() -> int:
    return environment()[0]


def local_rank() -> int:
    return environment()[2]


def setup(device: torch.device, batch_size: int, sync_bn: bool) -> World:
    """The World this process is in, joined to its process group when torchrun started several; the run's
    settings are checked against it first, on every process alike (so all fail the same way, before any waits)."""
    rank, size, local = environment()
    if size <= 1:
        return World(device=device)
    if batch_size % size:
        multiple = max(size, round(batch_size / size) * size)
        raise CnnlabError(
            f"--batch-size {batch_size} cannot be split across {size} processes: the global batch must "
            f"be a multiple of the process count (e.g. --batch-size {multiple})"
        )
    if device.type not in ("cpu", "cuda"):
        raise CnnlabError(
            f"distributed training runs on CPU (gloo) or CUDA (nccl) processes, not {device.type}; "
            "pass --device cpu or --device cuda"
        )
    if sync_bn and device.type != "cuda":
        raise CnnlabError(
            "--sync-bn needs CUDA processes: torch's SyncBatchNorm synchronises batch statistics on "
            "GPUs only; drop --sync-bn for a CPU run (each process then normalises its own share)"
        )
    if not dist.is_initialized():  # a caller (or an earlier run in this process) may have joined already
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except (ValueError, RuntimeError) as error:
            raise CnnlabError(
                f"cannot join the process group of {size} processes (WORLD_SIZE={size}): "
                f"{first_line(error)}; start distributed runs with torchrun"
            ) from None
        atexit.register(dist.destroy_process_group)  # the group lives as long as the process torchrun started
    return World(rank=rank, size=size, local_rank=local, device=device)
