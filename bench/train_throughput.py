"""Training images/s on Fashion-MNIST: the tutorials' loop against cnnlab's trainer, the same architecture.

(a) the tutorial loop, as the tutorials write it: torchvision's FashionMNIST with per-sample ToTensor + Normalize,
    DataLoader(batch_size=32, shuffle=True, num_workers=2), fp32, eager, SGD with momentum;
(b) cnnlab's trainer with its defaults (uint8 tensors in memory, per-batch normalisation, channels_last, bf16
    autocast where the CPU has it, foreach optimizer, batch 64).

Both train on the same number of images per round, timed from the first batch (so (a) pays for starting its
workers and (b) for its first-batch kernel set-up, as every real epoch does); rounds interleave (a) and (b).
Model FLOP utilisation: (b)'s images/s times the training FLOPs per image (forward + backward, from torch's FLOP
counter), divided by the fp32 and bf16 GEMM peaks measured in the same run.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from bench.common import gemm_peak, interleaved, markdown, median, timed, torchvision_fashion_mnist_root, write
from cnnlab.building import build_model, wants_small_input
from cnnlab.data import load_dataset
from cnnlab.engine.config import TrainConfig, resolve
from cnnlab.engine.trainer import run

# model -> training images per round (full mode); sized so one round of (b) takes roughly 5-20 s here.
MODELS = {"lenet5": 16_000, "simple_resnet": 2_000, "resnet20": 2_000, "mini_vgg": 2_000, "resnet18": 1_000}
TUTORIAL_BATCH = 32
TUTORIAL_LR = 0.01  # SGD lr of the tutorials' loops; speed does not depend on it


def model_for(name: str) -> torch.nn.Module:
    config = resolve(TrainConfig(model=name, dataset="fashion-mnist"))
    config.small_input = wants_small_input(name, 28)
    return build_model(config, num_classes=10, in_chans=1, image_size=28)


def tutorial_round(name: str, root: Path, images: int) -> float:
    """Images/s of the tutorial loop over `images` training images (rounded up to whole batches)."""
    import torchvision.transforms as T
    from torchvision.datasets import FashionMNIST

    dataset = FashionMNIST(
        root, train=True, download=False, transform=T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])
    )
    loader = DataLoader(dataset, batch_size=TUTORIAL_BATCH, shuffle=True, num_workers=2)
    model = model_for(name).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=TUTORIAL_LR, momentum=0.9)
    batches = -(-images // TUTORIAL_BATCH)

    def loop() -> None:
        for x, y in itertools.islice(loader, batches):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    return batches * TUTORIAL_BATCH / timed(loop)


def cnnlab_round(name: str, data, images: int, out: Path) -> tuple[float, dict]:
    """Images/s of cnnlab's trainer, defaults, one epoch over `images` training images (val split off)."""
    config = TrainConfig(
        model=name, dataset="fashion-mnist", epochs=1, train_subset=images, val_fraction=0.0, out=str(out / name)
    )
    results = run(config, overwrite=True, quiet=True, data=data)
    return results["train_images_per_second"], results


def training_flops_per_image(name: str, batch: int = 64) -> float:
    model = model_for(name).train()
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def main(quick: bool = False) -> dict:
    scale = 8 if quick else 1
    repeats = 2 if quick else 3
    data = load_dataset("fashion-mnist")
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    rows, record = [], {"quick": quick, "repeats": repeats, "gemm_peak_flops": peaks, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_fashion_mnist_root(Path(tmp) / "torchvision")
        for name, images in MODELS.items():
            images = max(images // scale, 256)
            last: dict = {}

            def ours() -> float:
                speed, last["results"] = cnnlab_round(name, data, images, Path(tmp) / "runs")
                return speed

            samples = interleaved({"tutorial": lambda: tutorial_round(name, root, images), "cnnlab": ours}, repeats)
            tutorial, cnnlab = median(samples["tutorial"]), median(samples["cnnlab"])
            flops = training_flops_per_image(name)
            achieved = flops * cnnlab
            record["models"][name] = {
                "images_per_round": images,
                "tutorial_images_per_s": samples["tutorial"],
                "cnnlab_images_per_s": samples["cnnlab"],
                "ratio": cnnlab / tutorial,
                "training_flops_per_image": flops,
                "achieved_flops": achieved,
                "mfu_vs_bf16_peak": achieved / peaks["bf16"],
                "mfu_vs_fp32_peak": achieved / peaks["fp32"],
                "cnnlab_precision": last["results"]["precision"],
                "cnnlab_batch": last["results"]["batch_size"],
            }
            rows.append(
                [
                    name,
                    f"{tutorial:,.0f}",
                    f"{cnnlab:,.0f}",
                    f"{cnnlab / tutorial:.2f}x",
                    f"{achieved / 1e9:.1f}",
                    f"{achieved / peaks['bf16']:.1%}",
                    f"{achieved / peaks['fp32']:.1%}",
                ]
            )
            print(
                f"  {name}: tutorial {tutorial:,.0f} img/s, cnnlab {cnnlab:,.0f} img/s ({cnnlab / tutorial:.2f}x)",
                flush=True,
            )
    table = markdown(
        ["model", "tutorial loop img/s", "cnnlab img/s", "ratio", "GFLOP/s", "of bf16 peak", "of fp32 peak"], rows
    )
    print(f"GEMM peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print(table)
    record["table"] = table
    write("train_throughput", record)
    return record
