"""Inference and deployment: BatchNorm folding, the optimised inference model, ONNX and TorchScript export.

    folded = fold_batchnorm(model)                      # in place: every conv -> BN pair becomes one conv
    fast = optimize_for_inference(model)                # a copy: folded, channels_last, bf16 where the CPU has it
    small = quantize_int8(model, calibration_images)    # a copy: int8 weights and activations (torch.ao, x86)
    export("runs/lenet5-digits-<time>", "onnx")          # model.onnx (dynamic batch) + model.onnx.json

Folding finds its pairs in the model's torch.fx graph, not by attribute names: a BN folds into a conv only if
it is called on that conv's output and nothing else reads that output or the two modules. Names alone would
mislead: pre-activation blocks (DenseNet, PreAct ResNet) also have a conv1 and a bn1, but their BN comes before
the conv, behind a ReLU, where it cannot fold. The folded model keeps its class and interface; each folded BN is
replaced by an `nn.Identity`.

Exported files stay fp32 and NCHW, with or without `optimize` (which folds BN): an ONNX runtime or TorchScript
on any CPU runs them and their outputs equal the eager model's (within 1e-4). bf16 and channels_last are choices
of the process that runs the model, made by `optimize_for_inference`.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.files import write_bytes, write_json

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}  # format -> default file in the run dir
INPUT_NAME, OUTPUT_NAME = "images", "logits"


class _Tracer(fx.Tracer):
    """fx's tracer, except that a module built during forward (e.g. VGG's `self.classifier[:-1]`, a slice of an
    installed Sequential) is traced through instead of failing: its layers are installed, so they still show."""

    def call_module(self, m, forward, args, kwargs):
        try:
            self.path_of_module(m)
        except NameError:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)


def _model_name(model: nn.Module) -> str:
    return getattr(model, "model_name", None) or type(model).__name__


def untraceable(what: str, error: Exception) -> CnnlabError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return CnnlabError(f"{what}: torch.fx cannot trace its forward ({reason})")


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) dotted module names where the BN takes the conv's output, in graph order.

    A pair qualifies when each module is called exactly once, the conv's output feeds only the BN, no code reads
    either module's tensors directly, and the BN keeps running statistics (eval mode uses them).
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # fx raises many types for untraceable code (TraceError, TypeError, ...)
        raise untraceable(f"cannot fold BatchNorm in {_model_name(model)}", error) from None
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    read_directly = {node.target.rpartition(".")[0] for node in graph.nodes if node.op == "get_attr"}
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        bn, source = modules[node.target], node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not (isinstance(source, fx.Node) and source.op == "call_module"):
            continue
        conv = modules[source.target]
        if (
            type(conv) is nn.Conv2d  # not a subclass, whose forward may do more than convolve
            and bn.running_mean is not None
            and len(source.users) == 1
            and calls[source.target] == calls[node.target] == 1
            and not {source.target, node.target} & read_directly
        ):
            pairs.append((source.target, node.target))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> int:
    """Fold every foldable BatchNorm2d into the conv before it, in place, and return how many were folded.

    The model is put in eval mode first: folding bakes in the running statistics, which is what eval-mode BN
    computes, so the outputs stay equal (up to float rounding). A folded conv gains a bias.
    """
    model.eval()
    pairs = foldable_pairs(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        parent, _, attr = bn_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, nn.Identity())
    return len(pairs)


class InferenceModel(nn.Module):
    """An optimised model behind the eager model's contract: fp32 NCHW images in, fp32 logits out.

    `model` is the folded copy (its interface intact); `dtype` and `memory_format` are what it computes in.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype, memory_format: torch.memory_format, folded: int) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.memory_format = memory_format
        self.folded_batchnorms = folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(dtype=self.dtype, memory_format=self.memory_format)).float()

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, memory_format={self.memory_format}, folded_batchnorms={self.folded_batchnorms}"


def optimize_for_inference(model: nn.Module, precision: str = "auto", channels_last: bool = True) -> InferenceModel:
    """A copy of `model` for fast inference: BN folded into the convs, weights in channels_last, and the dtype
    training's autocast would pick on the model's device: bf16 for "bf16", or for "auto" on a CPU with native bf16
    (AVX512-BF16/AMX) or a bf16 GPU; fp16 for "fp16" (and "auto" on older GPUs) on CUDA; else fp32.

    The result takes and returns what the eager model does (fp32 in, fp32 logits out). The fp32 path equals the
    eager model within float rounding; bf16 keeps top-1 on all but near-tied inputs (see tests/models/test_deploy.py).
    """
    from cnnlab.engine.config import PRECISIONS
    from cnnlab.precision import autocast_dtype

    if precision not in PRECISIONS:
        raise unknown_name_error("precision", precision, PRECISIONS)
    param = next(model.parameters(), None)
    dtype = autocast_dtype(precision, param.device.type if param is not None else "cpu") or torch.float32
    optimized = copy.deepcopy(model)
    folded = fold_batchnorm(optimized)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    optimized = optimized.to(dtype=dtype, memory_format=memory_format)
    return InferenceModel(optimized, dtype, memory_format, folded).eval()


def quantize_int8(model: nn.Module, calibration: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """A copy of `model` with int8 weights and activations: torch.ao's post-training static quantization through
    fx, x86 backend (its default qconfig: per-channel weights, histogram observers on activations). `calibration`
    holds normalised fp32 images [N, C, H, W] that set the activation ranges; a few hundred suffice.

    The result takes and returns fp32 like the eager model. torch 2.10+ marks torch.ao's quantized tensors as
    deprecated in favour of the torchao package; its warnings are silenced here, the path still runs in 2.14.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if calibration.ndim != 4 or not calibration.is_floating_point():
        raise CnnlabError(
            f"int8 calibration needs normalised float images [N, C, H, W], got {tuple(calibration.shape)} "
            f"{calibration.dtype}"
        )
    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning, FutureWarning))
        try:
            prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (calibration[:1],))
        except Exception as error:  # as in foldable_pairs
            raise untraceable(f"cannot quantize {_model_name(model)}", error) from None
        with torch.no_grad():
            for start in range(0, len(calibration), batch_size):
                prepared(calibration[start : start + batch_size])
            return convert_fx(prepared)


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise unknown_name_error("export format", format, FORMATS)


def export_bytes(model: nn.Module, example: torch.Tensor, format: str) -> bytes:
    """`model` (in eval mode) as an ONNX or TorchScript file whose batch axis is dynamic, traced on `example`."""
    check_format(format)
    model.eval()
    with torch.no_grad():
        return _onnx_bytes(model, example) if format == "onnx" else _torchscript_bytes(model, example)


def _onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    try:
        import onnx  # noqa: F401  (both exporters write their protobuf with it)
        import onnxscript  # noqa: F401  (the torch.export-based one translates with it)
    except ImportError:
        raise CnnlabError("ONNX export needs the onnx and onnxscript packages: pip install 'cnnlab[export]'") from None
    # The TorchScript-based exporter first: on two cores it writes each family's smallest model in 0.1-3 s where
    # the torch.export-based one takes 2-16 s. It cannot write some ops (AdaptiveAvgPool2d to a size that does not
    # divide its input, as AlexNet's 6x6 pool on small images); the torch.export-based one, torch's default since
    # 2.9, then does (tests/models/test_deploy.py runs both paths).
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # torch 2.9+ deprecates it at every call; the warnings would only tell the user about cnnlab's internals.
            warnings.filterwarnings(
                "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
            )
            warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        return buffer.getvalue()
    except torch.onnx.errors.OnnxExporterError:
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
        return program.model_proto.SerializeToString()


def _torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    # Tracing records shape reads as ops, so the batch stays free; the models' forwards hold Python control flow
    # (the input-size check) that torch.jit.script would reject. torch 2.14 deprecates torch.jit (a FutureWarning
    # at every call), which still is what writes this format.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        torch.jit.save(torch.jit.trace(model, example), buffer)
    return buffer.getvalue()


def export(run_dir: str | Path, format: str = "onnx", optimize: bool = False, out: str | Path | None = None) -> dict:
    """Export a run's model to `out` (default RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt) with a dynamic
    batch axis, and write the sidecar OUT.json: the class names, input size and normalisation a caller needs
    to feed it images. `optimize` folds BatchNorm into the convs first (fp32; the outputs stay equal).

    The model takes float32 [B, C, H, W] images scaled as `(pixel / 255 - mean) / std`; returns the sidecar dict.
    """
    from cnnlab.inference.prediction import load_run

    check_format(format)  # before the run loads: a typo fails fast
    run = load_run(run_dir)
    data = run.data
    folded = fold_batchnorm(run.model) if optimize else 0
    example = torch.zeros(2, data["in_chans"], data["image_size"], data["image_size"])
    out = Path(out) if out else run.run_dir / FORMATS[format]
    try:  # a new folder for --out is made; a path through a file fails here, before the export runs
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CnnlabError(f"could not write {out}: {out.parent} is a file, not a directory") from None
    except OSError as error:
        raise CnnlabError(f"could not write {out}: {error.strerror or error}") from None
    payload = export_bytes(run.model, example, format)
    write_bytes(out, payload)
    sidecar = {
        "model": run.config.model,
        "format": format,
        "file": out.name,
        "dataset": data["name"],
        "classes": list(data["classes"]),
        "input_size": [data["in_chans"], data["image_size"], data["image_size"]],
        "mean": list(data["mean"]),
        "std": list(data["std"]),
        "preprocessing": "float32 (pixel / 255 - mean) / std per channel, [B, C, H, W]",
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "dynamic_axes": {INPUT_NAME: [0], OUTPUT_NAME: [0]},
        "optimized": optimize,
        "folded_batchnorms": folded,
        "torch": torch.__version__,
    }
    sidecar_path = out.with_name(out.name + ".json")
    write_json(sidecar_path, sidecar)
    return {**sidecar, "path": str(out), "sidecar": str(sidecar_path)}
