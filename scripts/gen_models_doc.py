"""Write docs/models.md from the model registry: every model's family, year, default input, parameters,
multiply-accumulates at that input, torchvision twin, depth, receptive field, ImageNet top-1 and key idea.

    .venv/bin/python scripts/gen_models_doc.py            # writes docs/models.md
    .venv/bin/python scripts/gen_models_doc.py -o -       # prints it

The numbers come from `cnnlab.models.zoo.catalog_row` (as `cnnlab models` prints them): measured on the meta device
(shapes only: no memory, no init, no arithmetic), so the whole zoo takes seconds.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from pathlib import Path

import torch
import torchvision

from cnnlab.models.zoo import catalog_row
from cnnlab.registry import ModelInfo, create_model, list_models, model_info

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "models.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{platform.system()} on {cpu}"
    )


def natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def readable(count: int) -> str:
    """1814073344 -> "1.81 G", 416520 -> "417 K": three significant digits and an SI prefix."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g} {prefix}"
    return str(count)


def row(info: ModelInfo) -> str:
    measured = catalog_row(info.name)  # params, MACs, depth, receptive field and top-1, on the meta device
    input_size = "x".join(str(v) for v in info.input_size)
    twin = f"`{info.twin}`" if info.twin else ""
    top1 = f"{measured['top1']:.1f}" if measured["top1"] is not None else ""
    return (
        f"| `{info.name}` | {info.year} | {input_size} | {measured['params']:,} | {readable(measured['macs'])} "
        f"| {twin} | {measured['depth']} | {measured['receptive_field']} | {top1} | {info.key_idea} |"
    )


def speednet_note() -> list[str]:
    """SpeedNet is cnnlab's own design, not a paper's: what it is, why its shape suits a CPU, and its size at
    Fashion-MNIST's 1x28x28 (the table above is at its default 3x32x32), counted on the meta device."""
    from cnnlab.measure.counting import count_macs, count_params

    def size(name: str) -> str:
        with torch.device("meta"):
            model = create_model(name, in_chans=1)
        return f"| `{name}` | 1x28x28 | {count_params(model):,} | {readable(count_macs(model, (1, 28, 28)))} |"

    with torch.device("meta"):
        second = create_model("speednet", in_chans=1).block1[4]  # block1's second conv, 64 -> 64 channels
    after, before = (readable(count_macs(second, (64, side, side))) for side in (14, 28))
    return [
        "SpeedNet is cnnlab's own network, not a published one: the shape of Keller Jordan's airbench CIFAR-10 net",
        "(the reference above), sized for a 2-core CPU with AVX-512 and AMX-BF16. A 3x3 stem conv, then three blocks",
        "of conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU, a global max-pool and a bias-free linear layer",
        "whose logits are multiplied by a fixed 1/9; seven convs in a plain chain, no residual connections.",
        "",
        "Why this shape on a CPU: each conv amounts to a matrix product whose inner dimension is 9 x the input",
        "channels and whose width is the output channels. A few wide layers make a few large products that fill the",
        "512-bit vector registers and AMX's 16x32 bf16 tiles; many thin layers (16-32 channels, depthwise convs)",
        "leave them part-empty and pay each layer's fixed cost (a pass over memory, a kernel call) more often.",
        "Pooling right after the first conv of each block halves the side before the second conv, the block's larger",
        "one (out x out channels), which then runs on a quarter of the pixels and costs 4x fewer MACs (speednet's",
        f"block1 at 28x28: {after} instead of {before}). With no residual adds there is no second tensor per block",
        "to keep and read back.",
        "",
        "| model | input | params | MACs |",
        "|---|---|---:|---:|",
        size("speednet"),
        size("speednet_small"),
        "",
    ]


# Prose after a family's table, for families whose table alone does not explain them.
FAMILY_NOTES = {"SpeedNet": speednet_note}


DEPTH_AND_FIELDS = """## Depth and receptive fields

**depth** counts weight layers (convolutions and linear layers, each call once) on the longest path from the image
to the logits, traced through one forward pass (`cnnlab.measure.receptive.main_path_depth`). It gives the numbers in
the papers' names: LeNet-5 5, AlexNet 8, VGG-16 16, GoogLeNet 22, ResNet-18 18, ResNet-50 50, DenseNet-121 121,
MobileNet 28. Projection shortcuts lie on a shorter path, Inception takes its deepest branch, and a
squeeze-and-excitation gate's two 1x1 convs sit on a side path, so none of them adds depth. Wide ResNet-28-10 gets 26:
its name counts 6n + 4 layers (n = 4 blocks per stage), its longest path holds the stem conv, 6n block convs and the
classifier, 6n + 2.

**RF** is the theoretical receptive field of one pixel of the last feature map (`forward_features`), in input pixels
per side (`cnnlab.receptive_field(name)`), on the widest path through residual and multi-branch blocks (Araujo,
Norris & Sim 2019, Distill): each conv or pool adds (kernel - 1) x the input-grid spacing it works on, a residual add
or a concat keeps the widest of its inputs. `cnnlab summary MODEL` shows it for every layer. It can exceed the input:
the field's edge then lies in the zero padding. A squeeze-and-excitation gate scales channels by a global average,
so strictly every unit after one depends on the whole image; the gate is left out, and RF describes the convolutional
path. AlexNet's 195 and VGG-16's 212 equal Araujo et al.'s published values. ResNet-50 gets 427, where their table
lists 483: torchvision (and cnnlab, its twin) put each stage's stride in the bottleneck's 3x3 conv, the paper put it
in the first 1x1. A 3x3 that runs before the stride steps on the finer grid and adds 2 x jump instead of 2 x 2 x jump,
once in each of the three downsampling blocks: 8 + 16 + 32 = 56 pixels fewer. Moving each stride to the 1x1 gives 483,
1,027 and 1,507 for ResNet-50/101/152, Araujo et al.'s numbers (`tests/measure/test_receptive_field.py`). The
effective receptive field (Luo et al. 2016), measured from input gradients, is much smaller:
`cnnlab.effective_receptive_field(name)` and `cnnlab visualize --show erf`.

**top-1** is ImageNet-1K top-1 accuracy (%) of torchvision's DEFAULT weights for the model's twin, read from
`torchvision.models.get_model_weights(twin).DEFAULT.meta` (no download). For some models DEFAULT is torchvision's 2021
recipe (ResNet-50: 80.9, against 76.1 for its first weights); `cnnlab models --format json` has both (`top1`,
`top1_v1`). The same table: `cnnlab models`; the evolution chart: `cnnlab models --plot timeline.png`
([visualize.md](visualize.md#the-evolution-timeline)).
"""


def render() -> str:
    # Families by first year; inside one, names in natural order (resnet18 before resnet101).
    infos = sorted((model_info(name) for name in list_models()), key=lambda info: (info.year, info.family))
    lines = [
        "# Model zoo",
        "",
        "Generated by `scripts/gen_models_doc.py` from the registry; do not edit by hand.",
        f"Counted with {machine()}.",
        "",
        "Parameters are exact; MACs are multiply-accumulates of one image at the model's default input",
        "(torch's FlopCounterMode FLOPs / 2, the convention of torchvision's \"GFLOPS\"). Models with a",
        "torchvision twin load its checkpoints (`create_model(name, weights=PATH)`) and give its logits.",
        "Depth, receptive field (RF) and ImageNet top-1 are explained below the tables.",
        "",
    ]
    families: dict[str, list[ModelInfo]] = {}
    for info in infos:
        families.setdefault(info.family, []).append(info)
    for family, members in families.items():
        members.sort(key=lambda info: natural_key(info.name))
        lines += [f"## {family}", "", f"{members[0].paper}", ""]
        papers = sorted({info.paper for info in members[1:]} - {members[0].paper})
        lines += [*(f"Also: {paper}" for paper in papers), *([""] if papers else [])]
        lines += [
            "| model | year | input | params | MACs | torchvision twin | depth | RF | top-1 | key idea |",
            "|---|---|---|---:|---:|---|---:|---:|---:|---|",
        ]
        lines += [row(info) for info in members]
        lines.append("")
        lines += FAMILY_NOTES[family]() if family in FAMILY_NOTES else []
    lines += [f"{len(infos)} models in {len(families)} families.", "", DEPTH_AND_FIELDS.rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
