"""ResNet-18 inference at 224x224, batch 1 and batch 8: cnnlab's optimised model (BN folded into the convs,
channels_last, bf16 where the CPU has it: `cnnlab.deploy.optimize_for_inference`, what `cnnlab export --optimize`
writes) against torchvision's resnet18 in eager fp32, both holding the same weights (torchvision's random init,
saved to a file and loaded through `create_model(weights=...)`: no download).

Each candidate is warmed up, then rounds interleave them; a round times `calls` forward passes. Reported: median
latency per call and images/s. Agreement on one fixed batch: top-1 equal, and the max |logit difference|. The
fp32 folded path must agree; the bf16 path is reported as measured (random-init logits are near-tied, so bf16
rounding can swap a top-1 that a trained network's margin would keep).

Then, in the same run, cnnlab against what a user would deploy on CPU instead, onnxruntime, on resnet18 at 224²,
resnet20 at 28² (one channel, 10 classes: Fashion-MNIST's shape) and mobilenet_v3_small at 224², batch 1 and 8:
- `cnnlab.optimize_for_inference(model)` in fp32 and in auto precision (bf16 where the CPU computes it natively);
- the BN-folded ONNX file that `cnnlab export --format onnx --optimize` writes, in an onnxruntime session with
  every graph optimisation on (ORT_ENABLE_ALL) and one intra-op thread per CPU (`cnnlab.inference.onnx_runtime`);
- int8: `cnnlab.deploy.quantize_int8` (torch.ao, x86) against onnxruntime's static quantization of that file
  (`quantize_static`, QDQ format, u8 activations, per-channel s8 weights, MinMax calibration, after
  `quant_pre_process`), both calibrated on the same 32 random images. Static, not dynamic: onnxruntime's docs
  advise static quantization for CNNs (dynamic for RNNs and transformers), and static is what torch.ao does here.
The models are random-init with randomised BN statistics and unit-gain classifiers (no download, and folding has
something to fold). Against the eager fp32 model on a fixed batch of 8: the fp32 paths must keep every top-1 and
their logits within 1e-4 relative (asserted); bf16 and int8 agreement is recorded. Random nets give most images
the same top-1, so those rates say little about a trained model's loss: bench/int8.py measures that on
Fashion-MNIST. Reported per model and batch: images/s of each path and cnnlab's best ÷ onnxruntime's best, over
all paths and over the float paths only. The `auto` column is what `--runtime auto` picks between
cnnlab's auto-precision path (what `predict` and `eval` run for a run trained at `--precision auto`: bf16 where
the CPU computes it, else fp32) and onnxruntime fp32 (`cnnlab.inference.runtime.choose`, its own short measurement
in a fresh cache) and the picked path's images/s ÷ onnxruntime's best float path, as this benchmark measured both:
1.00x or more when auto picks right against onnxruntime, and "auto right" says whether it picked the faster of the
two. `main(quick=True)` shrinks the 224² inputs to 64² and the rounds to a few calls: a smoke run, whose timings
mean nothing.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

from bench.common import interleaved, markdown, median, write
from cnnlab import create_model
from cnnlab.deploy import INPUT_NAME, export_bytes, fold_batchnorm, optimize_for_inference, quantize_int8
from cnnlab.inference import onnx_runtime, runtime

BATCHES = (1, 8)
# The onnxruntime comparison: (model, input channels, side, classes); --quick shrinks 224² to QUICK_SIDE.
ORT_MODELS = (("resnet18", 3, 224, 1000), ("resnet20", 1, 28, 10), ("mobilenet_v3_small", 3, 224, 1000))
QUICK_SIDE = 64
CALIBRATION_IMAGES = 32  # random images: the models are random-init too, so real images would mean no more
FLOAT_PATHS = ("cnnlab fp32", "cnnlab auto", "onnxruntime fp32")  # the others are int8
# fp32 paths: max |logit difference| over the largest |logit|. Random-init nets give every image nearly the same
# top-1, so equal top-1 alone would pass a path that ignored its input; the logits themselves must match.
FP32_TOLERANCE = 1e-4


def per_call_seconds(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(calls):
            model(x)
        return (time.perf_counter() - start) / calls


def agreement(reference: torch.nn.Module, candidate: torch.nn.Module, x: torch.Tensor) -> dict:
    with torch.inference_mode():
        a, b = reference(x), candidate(x)
    return {
        "top1_equal": bool(torch.equal(a.argmax(1), b.argmax(1))),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).float().mean()),
        "max_abs_logit_diff": float((a - b).abs().max()),
        "max_relative_logit_diff": float((a - b).abs().max() / a.abs().max()),
        "reference_top1_classes": len(a.argmax(1).unique()),  # 1: the batch cannot tell a path that ignores x
    }


def torchvision_comparison(quick: bool = False) -> dict:
    repeats, calls = (3, 3) if quick else (7, 10)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.pth"
        torch.save(reference.state_dict(), path)
        ours = create_model("resnet18", weights=str(path)).eval()
    candidates = {
        "torchvision eager fp32": reference,
        "cnnlab optimized fp32": optimize_for_inference(ours, precision="fp32"),
        "cnnlab optimized auto": optimize_for_inference(ours, precision="auto"),
    }
    auto_dtype = str(candidates["cnnlab optimized auto"].dtype).replace("torch.", "")

    fixed = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    checks = {
        name: agreement(reference, model, fixed)
        for name, model in candidates.items()
        if name != "torchvision eager fp32"
    }
    assert checks["cnnlab optimized fp32"]["top1_equal"], checks  # folding BN must not change a prediction

    record = {
        "quick": quick,
        "repeats": repeats,
        "calls_per_round": calls,
        "auto_dtype": auto_dtype,
        "agreement": checks,
        "batches": {},
    }
    rows = []
    for batch in BATCHES:
        x = fixed[:batch].contiguous()
        for model in candidates.values():  # warm-up: oneDNN picks and caches its kernels on the first calls
            per_call_seconds(model, x, 2)
        samples = interleaved(
            {name: (lambda m=model: per_call_seconds(m, x, calls)) for name, model in candidates.items()}, repeats
        )
        base = median(samples["torchvision eager fp32"])
        record["batches"][batch] = {
            name: {
                "seconds_per_call": s,
                "median_ms": 1e3 * median(s),
                "images_per_s": batch / median(s),
                "speedup": base / median(s),
            }
            for name, s in samples.items()
        }
        for name, s in samples.items():
            label = name.replace("auto", f"auto ({auto_dtype})")
            rows.append(
                [batch, label, f"{1e3 * median(s):.1f}", f"{batch / median(s):.1f}", f"{base / median(s):.2f}x"]
            )
    table = markdown(["batch", "model", "median latency (ms)", "images/s", "vs torchvision eager fp32"], rows)
    print(table)
    for name, check in checks.items():
        print(
            f"{name}: top-1 agreement {check['top1_agreement']:.0%} on the fixed batch of 8, "
            f"max |logit diff| {check['max_abs_logit_diff']:.2e}"
        )
    record["table"] = table
    write("inference-quick" if quick else "inference", record)  # a smoke run keeps the measured file
    return record


def onnxruntime_int8_bytes(fp32: bytes, calibration: torch.Tensor) -> bytes:
    """onnxruntime's post-training static int8 version of an ONNX file, calibrated on `calibration` [N, C, H, W]:
    QDQ format, u8 activations and per-channel s8 weights (the pairing its docs advise on x86), after
    `quant_pre_process` (shape inference and its own graph optimisation, as those docs also advise)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: b.contiguous().numpy()} for b in calibration.split(8)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, quantized = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(fp32)
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return quantized.read_bytes()


def inference_paths(model: torch.nn.Module, calibration: torch.Tensor) -> dict[str, Callable]:
    """The five ways to run `model`, each a callable from fp32 images [B, C, H, W] to fp32 logits."""
    folded = copy.deepcopy(model)
    fold_batchnorm(folded)  # what `cnnlab export --format onnx --optimize` does before it writes the file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the exporter's notes on constant folding: not ours to act on
        fp32 = export_bytes(folded, calibration[:2], "onnx")
    sessions = {
        "fp32": onnx_runtime.session(fp32),
        "int8": onnx_runtime.session(onnxruntime_int8_bytes(fp32, calibration)),
    }
    return {
        "cnnlab fp32": optimize_for_inference(model, precision="fp32"),
        "cnnlab auto": optimize_for_inference(model, precision="auto"),
        "cnnlab int8": quantize_int8(model, calibration),
        "onnxruntime fp32": lambda x: onnx_runtime.run(sessions["fp32"], x),
        "onnxruntime int8": lambda x: onnx_runtime.run(sessions["int8"], x),
    }


def best_ratio(speeds: dict[str, float], paths: tuple[str, ...] | None = None) -> dict:
    """cnnlab's fastest path ÷ onnxruntime's fastest, among `paths` (default: all)."""
    kept = {name: v for name, v in speeds.items() if paths is None or name in paths}
    ours = max((n for n in kept if n.startswith("cnnlab")), key=kept.get)
    theirs = max((n for n in kept if n.startswith("onnxruntime")), key=kept.get)
    return {"cnnlab": ours, "onnxruntime": theirs, "ratio": kept[ours] / kept[theirs]}


def randomize_statistics_(model: torch.nn.Module, seed: int = 0) -> None:
    """Give the BNs non-trivial statistics and affine terms, and the linears unit gain. At init an eval-mode BN is
    the identity (folding it would be tested on nothing), and mobile nets' 0.01-std classifiers leave logits of
    ~1e-9, which int8 rounds to zero. BN gains stay below 1 so that deep residual stacks do not blow up."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 0.9, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, module.in_features**-0.5, generator=generator)


def auto_choice(name: str, paths: dict[str, Callable], shape: tuple[int, ...], batch: int, speeds: dict) -> dict:
    """What `--runtime auto` picks between cnnlab's auto-precision path and onnxruntime fp32, measured by auto itself
    in an empty cache, and how that pick fares in this benchmark's own measurement."""
    import os

    with tempfile.TemporaryDirectory() as state:
        previous = os.environ.get("CNNLAB_STATE_DIR")
        os.environ["CNNLAB_STATE_DIR"] = state  # a fresh measurement, not the user's cached one
        try:
            candidates = {"torch": lambda: paths["cnnlab auto"], "onnxruntime": lambda: paths["onnxruntime fp32"]}
            key = lambda: runtime.cache_key(f"model:{name}", shape, batch)  # noqa: E731
            choice = runtime.choose("auto", key, shape, batch, candidates)
        finally:
            if previous is None:
                os.environ.pop("CNNLAB_STATE_DIR")
            else:
                os.environ["CNNLAB_STATE_DIR"] = previous
    picked = "cnnlab auto" if choice.runtime == "torch" else "onnxruntime fp32"
    best = max(speeds[p] for p in ("cnnlab auto", "onnxruntime fp32"))
    ort_best = max(v for p, v in speeds.items() if p in FLOAT_PATHS and p.startswith("onnxruntime"))
    return {
        "runtime": choice.runtime,
        "reason": choice.reason,
        "ratio_to_onnxruntime_best": speeds[picked] / ort_best,
        "right": speeds[picked] == best,
    }


def compare_model(name: str, in_chans: int, side: int, classes: int, repeats: int, calls: int) -> dict:
    """One model's paths: agreement with the eager fp32 model on a fixed batch of 8, then images/s per batch."""
    torch.manual_seed(0)
    model = create_model(name, in_chans=in_chans, input_size=side, num_classes=classes).eval()
    randomize_statistics_(model)
    calibration = torch.randn(CALIBRATION_IMAGES, in_chans, side, side, generator=torch.Generator().manual_seed(2))
    paths = inference_paths(model, calibration)
    fixed = torch.randn(8, in_chans, side, side, generator=torch.Generator().manual_seed(1))
    checks = {path: agreement(model, forward, fixed) for path, forward in paths.items()}
    for path in ("cnnlab fp32", "onnxruntime fp32"):  # fp32 end to end: rounding only, no prediction may change
        check = checks[path]
        assert check["top1_equal"] and check["max_relative_logit_diff"] < FP32_TOLERANCE, (name, path, check)
    result = {"input": [in_chans, side, side], "agreement": checks, "batches": {}}
    for batch in BATCHES:
        x = fixed[:batch].contiguous()
        for forward in paths.values():  # warm-up: both runtimes pick and cache kernels on their first calls
            per_call_seconds(forward, x, 2)
        samples = interleaved(
            {path: (lambda f=forward: per_call_seconds(f, x, calls)) for path, forward in paths.items()}, repeats
        )
        speeds = {path: batch / median(s) for path, s in samples.items()}
        result["batches"][batch] = {
            "paths": {
                path: {"seconds_per_call": s, "median_ms": 1e3 * median(s), "images_per_s": speeds[path]}
                for path, s in samples.items()
            },
            "best": best_ratio(speeds),
            "best_float": best_ratio(speeds, FLOAT_PATHS),
            "auto": auto_choice(name, paths, (in_chans, side, side), batch, speeds),
        }
    return result


def onnxruntime_comparison(quick: bool = False) -> dict:
    """cnnlab's inference paths against onnxruntime's on ORT_MODELS; writes bench/results/inference_onnxruntime.json
    (inference_onnxruntime-quick.json for a smoke run) and returns the record."""
    repeats, calls = (2, 1) if quick else (7, 10)
    record = {
        "quick": quick,
        "repeats": repeats,
        "calls_per_round": calls,
        "calibration_images": CALIBRATION_IMAGES,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": onnx_runtime.cpu_count(),
        "onnxruntime": onnx_runtime.import_onnxruntime().__version__,
        "auto_dtype": str(optimize_for_inference(torch.nn.Conv2d(1, 1, 1)).dtype).replace("torch.", ""),
        "models": {},
    }
    for name, in_chans, side, classes in ORT_MODELS:
        side = min(side, QUICK_SIDE) if quick else side
        record["models"][name] = compare_model(name, in_chans, side, classes, repeats, calls)
    record["table"] = onnxruntime_table(record)
    print(record["table"])
    write("inference_onnxruntime-quick" if quick else "inference_onnxruntime", record)
    return record


def onnxruntime_table(record: dict) -> str:
    """Images/s of every path per model and batch, the two best-against-best ratios, then top-1 agreement."""
    paths = list(next(iter(record["models"].values()))["agreement"])
    rows, agreements = [], []
    for name, result in record["models"].items():
        shape = "x".join(map(str, result["input"]))
        for batch, measured in result["batches"].items():
            rows.append(
                [
                    f"{name} {shape}",
                    batch,
                    *(f"{measured['paths'][p]['images_per_s']:,.1f}" for p in paths),
                    f"{measured['best']['ratio']:.2f}x",
                    f"{measured['best_float']['ratio']:.2f}x",
                    f"{measured['auto']['runtime']} {measured['auto']['ratio_to_onnxruntime_best']:.2f}x",
                    "yes" if measured["auto"]["right"] else "no",
                ]
            )
        checks = result["agreement"]
        cells = (f"{checks[p]['top1_agreement']:.0%} ({checks[p]['max_relative_logit_diff']:.1e})" for p in paths)
        agreements.append([name, checks[paths[0]]["reference_top1_classes"], *cells])
    names = [p.replace("auto", f"auto ({record['auto_dtype']})") for p in paths]
    speed = markdown(
        [
            "model",
            "batch",
            *(f"{n} img/s" for n in names),
            "cnnlab best ÷ ORT best",
            "same, float paths only",
            "auto: pick, ÷ ORT best float",
            "auto right",
        ],
        rows,
    )
    agree = markdown(
        ["top-1 agreement with eager fp32 (max relative logit diff)", "distinct top-1 in the batch of 8", *names],
        agreements,
    )
    return f"{speed}\n\n{agree}"


def main(quick: bool = False) -> dict:
    """Both comparisons, in one run: against torchvision's eager model, then against onnxruntime."""
    return {"torchvision": torchvision_comparison(quick), "onnxruntime": onnxruntime_comparison(quick)}
