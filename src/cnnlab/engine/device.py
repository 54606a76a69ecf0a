"""Where a run computes: `--device auto|cpu|cuda|mps`, checked against the machine before anything trains.

The trainer keeps the data uint8 and uploads it to the device once (a quarter of float32's bytes, and no per-batch
host-to-device copy); normalisation and augmentation then run there, per batch, as on the CPU.
"""

from __future__ import annotations

import torch

from cnnlab.errors import CnnlabError


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `--device NAME` ("auto": CUDA, else MPS, else the CPU). Under torchrun each process
    takes the GPU of its LOCAL_RANK. A device this machine lacks is a one-line CnnlabError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise CnnlabError(
                f"--device cuda: CUDA is not available ({why}); use --device cpu, or --device auto "
                "for the best device this machine has"
            )
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise CnnlabError(
                f"process {local_rank} on this node has no GPU of its own: the node has {count} CUDA "
                f"device(s); start at most {count} processes per node (torchrun --nproc_per_node {count})"
            )
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not mps_available():
            raise CnnlabError(
                "--device mps: the MPS backend (Apple-silicon GPUs) is not available on this machine; "
                "use --device cpu, or --device auto for the best device this machine has"
            )
        return torch.device("mps")
    return torch.device("cpu")
