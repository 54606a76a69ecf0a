"""What every benchmark shares: the machine's description, interleaved A/B timing, medians, and the JSON record."""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from cnnlab import reporting
from cnnlab.precision import cpu_has_native_bf16
from cnnlab.reporting import markdown_table as markdown  # noqa: F401 (the benchmarks' tables)

RESULTS = Path(__file__).parent / "results"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def machine() -> dict:
    """CPU model, core count and the library versions: every table quotes them."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "bf16_native": cpu_has_native_bf16(),
        **reporting.versions(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def interleaved(candidates: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each candidate once per round, in the same order, for `repeats` rounds: a load spike on this shared
    machine then hits A and B alike instead of biasing one. Each call returns its own measurement."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, measure in candidates.items():
            samples[name].append(measure())
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gemm_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matmul (2 n^3 FLOPs), the best of `repeats`: the machine's practical compute ceiling."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)  # warm-up: thread pool and kernel selection
    return 2 * size**3 / min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))


def torchvision_fashion_mnist_root(cache: Path) -> Path:
    """A root folder that torchvision's FashionMNIST reads without downloading: Debian's gzipped IDX files
    unpacked into ROOT/FashionMNIST/raw/, as its downloader leaves them."""
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for source in FASHION_MNIST_DIR.glob("*.gz"):
        target = raw / source.name[:-3]
        if not target.exists():
            with gzip.open(source) as packed, open(target, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
    return cache


def write(name: str, record: dict) -> Path:
    """bench/results/NAME.json: the record, stamped with the machine (written atomically, like every results file)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    reporting.write_text(path, json.dumps({"benchmark": name, "machine": machine(), **record}, indent=2) + "\n")
    return path
