"""The precision policy: which dtype autocast computes in, for training and inference alike.

"auto" is bf16 where the hardware computes it natively (AVX512-BF16/AMX CPUs, Ampere-on GPUs), fp16 on older
GPUs, fp32 elsewhere; "fp16" needs CUDA, where the trainer scales its gradients.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError


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


def cpu_kind(cpuinfo: str | None = None) -> str:
    """amx-bf16 (Sapphire Rapids and later Xeons), avx512-bf16 without AMX (AMD Zen 4, Cooper Lake), arm-bf16 (Arm's
    BF16 extension) or no-native-bf16, from /proc/cpuinfo's flags (no-native-bf16 where it cannot be read): the
    kinds `--precision auto` tells apart, and a key of `--runtime auto`'s cache (cnnlab.inference.runtime)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "no-native-bf16"
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    if "amx_bf16" in flags:
        return "amx-bf16"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    return "arm-bf16" if "bf16" in flags else "no-native-bf16"


def autocast_dtype(precision: str, device_type: str = "cpu") -> torch.dtype | None:
    """bf16 when asked for, or for "auto" when the CPU computes bf16 natively (AVX512-BF16/AMX); else fp32 (None).
    On CUDA "auto" is bf16 where the GPU has it (Ampere on), else fp16; "fp16" is CUDA's only (`check_precision`),
    so elsewhere (evaluating a GPU run on a laptop) it computes in fp32."""
    if precision == "bf16":
        return torch.bfloat16
    if device_type == "cuda" and precision in ("auto", "fp16"):
        return torch.bfloat16 if precision == "auto" and torch.cuda.is_bf16_supported() else torch.float16
    if precision == "auto" and device_type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(dtype: torch.dtype | None, device_type: str = "cpu"):
    """torch.autocast to `dtype`, or no autocast at all for fp32 (None)."""
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else nullcontext()


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs loss scaling (a GradScaler) to keep small gradients from underflowing; cnnlab scales on CUDA only."""
    if precision == "fp16" and device.type != "cuda":
        raise CnnlabError(
            f"--precision fp16 needs --device cuda (its gradients need CUDA loss scaling); on "
            f"{device.type} use bf16 or fp32"
        )


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
