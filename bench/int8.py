"""int8 post-training quantization (torch.ao, x86 backend) of a Fashion-MNIST model: accuracy delta and speed.

The trainer trains resnet20 on Fashion-MNIST with its defaults; `cnnlab.deploy.quantize_int8` calibrates on 512
training images; both models classify the 10,000 test images. Speed: images/s at batch 64 of the eager fp32 model,
the BN-folded fp32 model (`optimize_for_inference(precision="fp32")`) and the int8 one, interleaved in rounds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench.common import interleaved, markdown, median, timed, write
from cnnlab.batches import prepare_batch
from cnnlab.data import load_dataset
from cnnlab.deploy import optimize_for_inference, quantize_int8
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.trainer import run
from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.inference.prediction import load_run

MODEL = "resnet20"
EPOCHS = 5  # full mode; --quick trains 1 epoch on 4,000 images
CALIBRATION_IMAGES = 512
BATCH = 64
CALLS = 20  # forward passes per timing round


def main(quick: bool = False) -> dict:
    data = load_dataset("fashion-mnist")
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            model=MODEL,
            dataset="fashion-mnist",
            epochs=1 if quick else EPOCHS,
            train_subset=4_000 if quick else None,
            out=str(Path(tmp) / MODEL),
        )
        trained = run(config, overwrite=True, quiet=True, data=data)
        model = load_run(trained["run_dir"]).model
    calibration = prepare_batch(data.train_images[:CALIBRATION_IMAGES], data, channels_last=False)
    quantized = quantize_int8(model, calibration)
    folded = optimize_for_inference(model, precision="fp32")
    candidates = {"eager fp32": model, "folded fp32": folded, "int8": quantized}
    accuracies = {
        name: evaluate_arrays(m, data.test_images, data.test_labels, data, channels_last=False)[1]
        for name, m in candidates.items()
    }
    batch = prepare_batch(data.test_images[:BATCH], data, channels_last=False)  # [64, 1, 28, 28] fp32

    def speed(m: torch.nn.Module) -> float:
        with torch.no_grad():
            m(batch)  # warm-up
            return CALLS * BATCH / timed(lambda: [m(batch) for _ in range(CALLS)])

    samples = interleaved({name: (lambda m=m: speed(m)) for name, m in candidates.items()}, 3 if quick else 7)
    base = median(samples["eager fp32"])
    rows = [
        [
            name,
            f"{accuracies[name]:.2%}",
            f"{100 * (accuracies[name] - accuracies['eager fp32']):+.2f}",
            f"{median(samples[name]):,.0f}",
            f"{median(samples[name]) / base:.2f}x",
        ]
        for name in candidates
    ]
    table = markdown(
        [
            f"{MODEL} on Fashion-MNIST ({config.epochs} epochs, trained in {trained['precision']})",
            "test accuracy",
            "Δ points",
            f"img/s at batch {BATCH}",
            "vs eager",
        ],
        rows,
    )
    print(table)
    record = {
        "quick": quick,
        "model": MODEL,
        "epochs": config.epochs,
        "train_precision": trained["precision"],
        "calibration_images": CALIBRATION_IMAGES,
        "accuracy": accuracies,
        "images_per_second": samples,
        "table": table,
    }
    write("int8-quick" if quick else "int8", record)
    return record
