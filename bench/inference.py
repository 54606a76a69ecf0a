"""ResNet-18 inference at 224x224, batch 1 and batch 8: cnnlab's optimised model (BN folded into the convs,
channels_last, bf16 where the CPU has it: `cnnlab.deploy.optimize_for_inference`, what `cnnlab export --optimize`
writes) against torchvision's resnet18 in eager fp32, both holding the same weights (torchvision's random init,
saved to a file and loaded through `create_model(weights=...)`: no download).

Each candidate is warmed up, then rounds interleave them; a round times `calls` forward passes. Reported: median
latency per call and images/s. Agreement on one fixed batch: top-1 equal, and the max |logit difference|. The
fp32 folded path must agree; the bf16 path is reported as measured (random-init logits are near-tied, so bf16
rounding can swap a top-1 that a trained network's margin would keep).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torchvision

from bench.common import interleaved, markdown, median, write
from cnnlab import create_model
from cnnlab.deploy import optimize_for_inference

BATCHES = (1, 8)


def per_call_seconds(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(calls):
            model(x)
        return (time.perf_counter() - start) / calls


def agreement(reference: torch.nn.Module, candidate: torch.nn.Module, x: torch.Tensor) -> dict:
    with torch.inference_mode():
        a, b = reference(x), candidate(x)
    return {"top1_equal": bool(torch.equal(a.argmax(1), b.argmax(1))),
            "top1_agreement": float((a.argmax(1) == b.argmax(1)).float().mean()),
            "max_abs_logit_diff": float((a - b).abs().max())}


def main(quick: bool = False) -> dict:
    repeats, calls = (3, 3) if quick else (7, 10)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.pth"
        torch.save(reference.state_dict(), path)
        ours = create_model("resnet18", weights=str(path)).eval()
    candidates = {"torchvision eager fp32": reference,
                  "cnnlab optimized fp32": optimize_for_inference(ours, precision="fp32"),
                  "cnnlab optimized auto": optimize_for_inference(ours, precision="auto")}
    auto_dtype = str(candidates["cnnlab optimized auto"].dtype).replace("torch.", "")

    fixed = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    checks = {name: agreement(reference, model, fixed) for name, model in candidates.items() if name != "torchvision eager fp32"}
    assert checks["cnnlab optimized fp32"]["top1_equal"], checks  # folding BN must not change a prediction

    record = {"quick": quick, "repeats": repeats, "calls_per_round": calls, "auto_dtype": auto_dtype,
              "agreement": checks, "batches": {}}
    rows = []
    for batch in BATCHES:
        x = fixed[:batch].contiguous()
        for model in candidates.values():  # warm-up: oneDNN picks and caches its kernels on the first calls
            per_call_seconds(model, x, 2)
        samples = interleaved({name: (lambda m=model: per_call_seconds(m, x, calls)) for name, model in candidates.items()},
                              repeats)
        base = median(samples["torchvision eager fp32"])
        record["batches"][batch] = {name: {"seconds_per_call": s, "median_ms": 1e3 * median(s),
                                           "images_per_s": batch / median(s), "speedup": base / median(s)}
                                    for name, s in samples.items()}
        for name, s in samples.items():
            label = name.replace("auto", f"auto ({auto_dtype})")
            rows.append([batch, label, f"{1e3 * median(s):.1f}", f"{batch / median(s):.1f}", f"{base / median(s):.2f}x"])
    table = markdown(["batch", "model", "median latency (ms)", "images/s", "vs torchvision eager fp32"], rows)
    print(table)
    for name, check in checks.items():
        print(f"{name}: top-1 agreement {check['top1_agreement']:.0%} on the fixed batch of 8, "
              f"max |logit diff| {check['max_abs_logit_diff']:.2e}")
    record["table"] = table
    write("inference", record)
    return record
