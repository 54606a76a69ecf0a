"""`--runtime auto`: run a model in whichever of cnnlab's torch path and ONNX Runtime is faster for it, here.

Neither runtime wins everywhere: onnxruntime's fused kernels beat eager torch on some models and batch sizes, torch's
oneDNN kernels (and bf16 on CPUs that compute it) beat onnxruntime on others (bench/inference.py). So `auto` does not
guess: the first time it meets a model, input shape, batch size and CPU kind it times both on random input of that
shape (a few warm-up calls, then interleaved timed calls; the median of each), keeps the faster, and caches the answer
in cnnlab's state directory (`runtime-choices.json`), so later calls measure nothing. A tie goes to torch, which
needs no exported file.

The cache key holds what changes the answer: the run's weights (their SHA-256: a retrained run is another model) or
a model name, the input shape, the batch size, the CPU kind (`cnnlab.precision.cpu_kind`), how torch runs it (its
autocast dtype) and the torch and onnxruntime versions. An entry that cannot be trusted (not an object, missing or
non-finite times, a runtime it does not know, a choice its own times contradict) is measured again, and a file that is
not a cache at all is replaced; both with a `RuntimeCacheRebuilt` warning. Without onnxruntime `auto` is torch, and
says so; a model onnxruntime cannot run (its export fails) is torch too, not an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.files import atomic_write
from cnnlab.precision import cpu_kind

AUTO = "auto"
RUNTIMES = (AUTO, "torch", "onnxruntime")  # what --runtime accepts; the first is the default
MEASURED = ("torch", "onnxruntime")  # what auto chooses between
CACHE_FILE = "runtime-choices.json"
CACHE_VERSION = 1
WARMUP_CALLS = 2  # both runtimes pick and cache their kernels on the first calls: those are not timed
TIMED_CALLS = 5  # per runtime, interleaved: a load spike on a shared CPU then hits both alike

Forward = Callable[[torch.Tensor], torch.Tensor]
clock = time.perf_counter  # module-level so that tests can replace the timer


class RuntimeCacheRebuilt(UserWarning):
    """An entry (or the whole file) of the runtime cache could not be trusted and is measured again."""


@dataclass(frozen=True)
class Choice:
    """The runtime that runs the model, and why (one line, as `cnnlab predict` prints it on stderr)."""

    runtime: str
    reason: str
    measured_now: bool = False  # this call timed both runtimes (False: asked for, cached, or no choice)

    def fields(self) -> dict:
        """What the JSON output and the API's return value carry."""
        return {"runtime": self.runtime, "runtime_reason": self.reason}

    def line(self) -> str:
        return f"runtime: {self.runtime} ({self.reason})"


def cache_path() -> Path:
    from cnnlab.models.trust import state_dir  # cnnlab's one state directory, shared with the code-trust record

    return state_dir() / CACHE_FILE


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def cache_key(identity: str, shape: tuple[int, ...], batch: int, mode: str = "fp32") -> str:
    """One line naming everything the faster runtime depends on; `identity` is "sha256:<hex>" or "model:<name>"."""
    parts = (
        identity,
        "x".join(map(str, shape)),
        f"batch {batch}",
        cpu_kind(),
        mode,
        f"torch {torch.__version__}",
        f"onnxruntime {onnxruntime_version()}",
    )
    return " | ".join(parts)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(weights: Path) -> str:
    """sha256:<hex> of a weights file, hashed once per (path, mtime, size) in this process."""
    stat = weights.stat()
    return "sha256:" + _sha256(str(weights), stat.st_mtime_ns, stat.st_size)


# --------------------------------------------------------------------------------------------------- the cache
def read_cache() -> dict:
    """The cache's entries by key; {} with a RuntimeCacheRebuilt warning for a file that is no cache."""
    path = cache_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        warnings.warn(f"cannot read {path} ({error.strerror}): measuring again", RuntimeCacheRebuilt, stacklevel=3)
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        warnings.warn(f"{path} is not a runtime cache: replacing it", RuntimeCacheRebuilt, stacklevel=3)
        return {}
    return data["entries"]


def _finite_positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def faster(torch_s: float, onnxruntime_s: float) -> str:
    return "onnxruntime" if onnxruntime_s < torch_s else "torch"  # a tie: torch, which needs no exported file


def valid_entry(entry: object) -> bool:
    """An entry to trust: a known runtime, two finite positive times, and the runtime those times pick."""
    return (
        isinstance(entry, dict)
        and entry.get("runtime") in MEASURED
        and _finite_positive(entry.get("torch_s"))
        and _finite_positive(entry.get("onnxruntime_s"))
        and entry["runtime"] == faster(entry["torch_s"], entry["onnxruntime_s"])
    )


def write_entry(key: str, entry: dict) -> None:
    """Add one entry, the file read afresh first (another process may have added others); an unwritable state
    directory costs the cache, not the command."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeCacheRebuilt)  # already said when the entry was looked up
        entries = read_cache()
    entries[key] = entry
    path = cache_path()
    payload = json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(payload))
    except (OSError, CnnlabError) as error:
        warnings.warn(f"the runtime choice is not cached: {error}", RuntimeCacheRebuilt, stacklevel=3)


def cached_entry(key: str) -> dict | None:
    entries = read_cache()
    if key not in entries:
        return None
    if valid_entry(entries[key]):
        return entries[key]
    warnings.warn(
        f"a broken entry of {cache_path()} was dropped (for {key.split(' | ')[0][:20]}...): measuring again",
        RuntimeCacheRebuilt,
        stacklevel=3,
    )
    return None


# ----------------------------------------------------------------------------------------------- measuring
def measure(forwards: dict[str, Forward], x: torch.Tensor) -> dict[str, float]:
    """Median seconds per call of each forward on `x`: WARMUP_CALLS each, then TIMED_CALLS rounds, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in forwards}
    with torch.inference_mode():
        for forward in forwards.values():
            for _ in range(WARMUP_CALLS):
                forward(x)
        for _ in range(TIMED_CALLS):
            for name, forward in forwards.items():
                start = clock()
                forward(x)
                times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def reason(entry: dict) -> str:
    chosen = entry["runtime"]
    other = "torch" if chosen == "onnxruntime" else "onnxruntime"
    ratio = entry[f"{other}_s"] / entry[f"{chosen}_s"]
    return f"{ratio:.1f}x faster than {other} here, measured once and cached"


def asked_for(requested: str) -> Choice | None:
    """The choice for --runtime torch or onnxruntime (None for auto); an unknown name lists the runtimes."""
    if requested not in RUNTIMES:
        raise unknown_name_error("runtime", requested, RUNTIMES)
    if requested == "torch":
        return Choice("torch", "asked for with --runtime torch")
    if requested == "onnxruntime":
        from cnnlab.inference.onnx_runtime import import_onnxruntime

        import_onnxruntime()  # today's one-line error without the package
        return Choice("onnxruntime", "asked for with --runtime onnxruntime")
    return None


def choose(
    requested: str,
    key: Callable[[], str],
    shape: tuple[int, ...],
    batch: int,
    candidates: dict[str, Callable[[], Forward]],
) -> Choice:
    """The runtime for `requested` (auto, torch or onnxruntime). For auto: the cached choice under `key()`, else
    both `candidates` ("torch", "onnxruntime": each builds its forward) timed on random [batch, *shape] input."""
    chosen = asked_for(requested)
    if chosen is not None:
        return chosen
    if onnxruntime_version() is None:
        return Choice("torch", "onnxruntime is not installed (pip install 'cnnlab[export]' to let auto compare)")
    cache_key_text = key()
    entry = cached_entry(cache_key_text)
    if entry is not None:
        return Choice(entry["runtime"], reason(entry))
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    try:
        onnx_forward = candidates["onnxruntime"]()
        with torch.inference_mode():
            onnx_forward(x)  # one call: a model onnxruntime cannot run fails here, not while it is timed
    except Exception as error:  # noqa: BLE001 - auto must never fail where torch works: any onnx failure means torch
        first = (str(error).splitlines() or [""])[0][:120]
        return Choice("torch", f"onnxruntime could not run this model ({type(error).__name__}: {first})")
    seconds = measure({"torch": candidates["torch"](), "onnxruntime": onnx_forward}, x)
    entry = {"runtime": faster(seconds["torch"], seconds["onnxruntime"])}
    entry |= {"torch_s": seconds["torch"], "onnxruntime_s": seconds["onnxruntime"]}
    write_entry(cache_key_text, entry)
    return Choice(entry["runtime"], reason(entry), measured_now=True)


# ------------------------------------------------------------------------------------------ a run directory
def torch_forward(model: torch.nn.Module, dtype: torch.dtype | None = None, channels_last: bool = False) -> Forward:
    """The model as cnnlab's torch path calls it: autocast to `dtype` (None: fp32), channels_last input or not."""
    from cnnlab.precision import autocast

    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast(dtype, x.device.type):
            return model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    return forward


@functools.lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int):
    from cnnlab.inference import onnx_runtime

    return onnx_runtime.session(Path(path))


def onnx_forward(run_dir: Path) -> Forward:
    """RUN_DIR/model.onnx (exported first when missing or stale) in an onnxruntime session, reused while the file
    stays the same (the lab's Inspect calls it once per image)."""
    from cnnlab.inference import onnx_runtime

    path = onnx_runtime.onnx_file(run_dir)
    session = _session(str(path), path.stat().st_mtime_ns)
    return lambda x: onnx_runtime.run(session, x)


class OnnxModel(torch.nn.Module):
    """An onnxruntime forward where a torch module is expected (evaluation's loop calls .eval(), .train())."""

    def __init__(self, forward: Forward) -> None:
        super().__init__()
        self.run = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def choose_for_run(
    requested: str,
    run_dir: str | Path,
    batch: int,
    model: Callable[[], torch.nn.Module],
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Choice:
    """The runtime of a run directory's model at `batch` images per call; `model` gives its torch module (called
    only when auto measures). The cache key is the SHA-256 of its weights."""
    from cnnlab.rundir import CONFIG, WEIGHTS, open_run

    chosen = asked_for(requested)  # before the run is read: a wrong name or a missing package fails first
    if chosen is not None:
        return chosen
    run = open_run(run_dir)
    data = run.read_config().require_data(run.file(CONFIG)).to_dict()
    shape = (data["in_chans"], data["image_size"], data["image_size"])
    mode = {None: "fp32"}.get(dtype, str(dtype).replace("torch.", "")) + (" channels_last" if channels_last else "")
    candidates = {
        "torch": lambda: torch_forward(model(), dtype, channels_last),
        "onnxruntime": lambda: onnx_forward(run.path),
    }
    key = lambda: cache_key(weights_identity(run.file(WEIGHTS)), shape, batch, mode)  # noqa: E731
    return choose(requested, key, shape, batch, candidates)


def predict(run_dir: str | Path, images: list, top_k: int, runtime: str = AUTO) -> list[dict]:
    """`cnnlab.inference.prediction.predict` in the chosen runtime; each result also names the runtime and why."""
    from cnnlab.inference import onnx_runtime, prediction

    choice = choose_for_run(runtime, run_dir, len(images), lambda: prediction.load_run(run_dir).model)
    if choice.runtime == "onnxruntime":
        results = onnx_runtime.predict(run_dir, images, top_k)
    else:
        results = prediction.predict(run_dir, images, top_k)
    return [{**item, **choice.fields()} for item in results]


def evaluate(
    run_dir: str | Path,
    data_dir: str | None = None,
    tta: bool | None = None,
    runtime: str = AUTO,
    tta_shift: int | None = None,
) -> dict:
    """`cnnlab.inference.prediction.evaluate` in the chosen runtime, measured at evaluation's batch size; the
    result (and eval.json) also names the runtime and why."""
    from cnnlab.inference import prediction

    asked_for(runtime)  # before the data loads

    def run_in(run: prediction.LoadedRun, dtype: torch.dtype | None, batch: int) -> tuple[torch.nn.Module, dict]:
        choice = choose_for_run(runtime, run.run_dir, batch, lambda: run.model, dtype, channels_last=True)
        model = OnnxModel(onnx_forward(run.run_dir)) if choice.runtime == "onnxruntime" else run.model
        return model, choice.fields()

    return prediction.evaluate(run_dir, data_dir, tta, model_for=run_in, tta_shift=tta_shift)
