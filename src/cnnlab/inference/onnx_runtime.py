"""An exported ONNX file run in onnxruntime: the session that `cnnlab predict --runtime onnxruntime` and the
inference benchmark (bench/inference.py) share, and prediction from a run directory through RUN_DIR/model.onnx.

The session turns on every graph optimisation onnxruntime has (ORT_ENABLE_ALL: constant folding, conv/BN/activation
fusion, layout changes) and runs one intra-op thread per CPU this process may use, as torch does by default: the
two runtimes compete on equal terms.

`predict` exports RUN_DIR/model.onnx first when it is missing or older than the run's weights (a resumed run),
BatchNorm folded, as `cnnlab export RUN_DIR --format onnx --optimize` writes it: the flag alone is enough, and
later calls reuse the file. Images are preprocessed exactly as the torch path does them, so both give the same
top-k (tests/inference/test_onnx_runtime.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cnnlab.data import normalize
from cnnlab.errors import CnnlabError
from cnnlab.rundir import CONFIG, open_run

RUNTIMES = ("torch", "onnxruntime")  # what `cnnlab predict --runtime` accepts


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, as torch counts them), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise CnnlabError("--runtime onnxruntime needs the onnxruntime package: pip install 'cnnlab[export]'") from None
    return onnxruntime


def session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session of an ONNX file (path or bytes), all graph optimisations on, `threads` intra-op
    threads (default: one per CPU this process may use)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_count()
    options.log_severity_level = 3  # errors only: its optimiser's notes would reach the user's terminal
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(session, x: torch.Tensor) -> torch.Tensor:
    """The session's first output (the logits) for a float32 batch [B, C, H, W]."""
    outputs = session.run(None, {session.get_inputs()[0].name: x.float().contiguous().numpy()})
    return torch.from_numpy(outputs[0])


def onnx_file(run_dir: Path) -> Path:
    """RUN_DIR/model.onnx, exported first (BN folded) when missing or older than RUN_DIR/model.safetensors."""
    from cnnlab.deploy import FORMATS, export  # torch.fx and the exporters load only when used

    path, weights = run_dir / FORMATS["onnx"], run_dir / "model.safetensors"
    if not path.exists() or (weights.exists() and path.stat().st_mtime < weights.stat().st_mtime):
        export(run_dir, "onnx", optimize=True)
    return path


def predict(run_dir: str | Path, images: list[str | Path], top_k: int = 5) -> list[dict]:
    """Top-k classes and probabilities for each image file, from RUN_DIR/model.onnx run in onnxruntime; the same
    result format as `cnnlab.inference.prediction.predict`."""
    from cnnlab.inference.prediction import load_image, top_classes

    import_onnxruntime()  # first: a missing package fails fast, with nothing read or written
    folder = open_run(run_dir)
    run_dir = folder.path
    data = folder.read_config().require_data(folder.file(CONFIG)).to_dict()
    batch = torch.stack([load_image(p, data["in_chans"], data["image_size"]) for p in images])  # uint8 [B, C, H, W]
    logits = run(session(onnx_file(run_dir)), normalize(batch, data["mean"], data["std"]))
    return top_classes(logits, data["classes"], images, top_k)
