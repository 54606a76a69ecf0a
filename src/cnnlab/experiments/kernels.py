"""Kernels: why stacks of 3x3 convs and 1x1 bottlenecks won, counted on real modules.

Each design is built as an nn.Module and measured with cnnlab.measure: parameters with `count_params`, MACs and
receptive fields with `summarize` (one traced forward pass), all on the meta device, so nothing is allocated.
The tutorials' closed forms (25C^2 vs 18C^2, 49C^2 vs 27C^2, 1,638,400 vs 135,168) become the "formula" column.
Full mode also trains a small 5x5 network against its 3x3-stack twin with one recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import nn

from cnnlab.data import load_dataset
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, train
from cnnlab.measure import count_params, receptive_field, summarize
from cnnlab.models.blocks import BasicBlock, Bottleneck, conv_norm_act
from cnnlab.models.meta import on_meta
from cnnlab.repeats import Claim

CHANNELS = 64  # C of the kernel comparisons
WIDE = 256  # the bottleneck comparisons' width
BOTTLENECK_INNER = 64
SIDE = 56  # MACs at 56x56, the resolution of ResNet's first stage, where both 64 and 256 channels occur


def conv(in_chs: int, out_chs: int, kernel: int) -> nn.Conv2d:
    """A same-padding conv without bias, so its parameters are exactly kernel^2 * in * out."""
    return nn.Conv2d(in_chs, out_chs, kernel, padding=kernel // 2, bias=False)


def conv_stack(channels: int, kernel: int, depth: int) -> nn.Sequential:
    """`depth` kernel x kernel convs with a ReLU between them (the stacked version gets the extra non-linearities)."""
    layers: list[nn.Module] = []
    for index in range(depth):
        layers += [conv(channels, channels, kernel)] + ([nn.ReLU()] if index < depth - 1 else [])
    return nn.Sequential(*layers)


def bottleneck_5x5(channels: int, inner: int) -> nn.Sequential:
    """1x1 reduce -> 5x5 -> 1x1 restore, the Inception/ResNet trick (no BN, no biases: only the convs count)."""
    return nn.Sequential(
        conv(channels, inner, 1), nn.ReLU(), conv(inner, inner, 5), nn.ReLU(), conv(inner, channels, 1)
    )


def main_path_field(block: nn.Module) -> int:
    """Receptive field of a residual block's conv path (the shortcut sees 1 pixel, the conv path the most)."""
    convs = [m for name, m in block.named_modules() if isinstance(m, nn.Conv2d) and not name.startswith("downsample")]
    return receptive_field([(m.kernel_size[0], m.stride[0]) for m in convs])


@dataclass
class Design:
    pair: str  # which comparison the design belongs to
    name: str
    build: callable
    channels: int
    formula: str  # the tutorial's closed form, for the table


def designs() -> list[Design]:
    c, w = CHANNELS, WIDE
    return [
        Design("5x5 vs two 3x3", "one 5x5", lambda: conv_stack(c, 5, 1), c, f"25C^2 = {25 * c * c:,}"),
        Design("5x5 vs two 3x3", "two 3x3", lambda: conv_stack(c, 3, 2), c, f"18C^2 = {18 * c * c:,}"),
        Design("7x7 vs three 3x3", "one 7x7", lambda: conv_stack(c, 7, 1), c, f"49C^2 = {49 * c * c:,}"),
        Design("7x7 vs three 3x3", "three 3x3", lambda: conv_stack(c, 3, 3), c, f"27C^2 = {27 * c * c:,}"),
        Design("naive vs bottleneck 5x5", "naive 5x5 256->256", lambda: conv_stack(w, 5, 1), w, f"{25 * w * w:,}"),
        Design(
            "naive vs bottleneck 5x5",
            "1x1-5x5-1x1 (64 inner)",
            lambda: bottleneck_5x5(w, BOTTLENECK_INNER),
            w,
            f"{2 * w * BOTTLENECK_INNER + 25 * BOTTLENECK_INNER**2:,}",
        ),
        Design(
            "basic vs bottleneck block",
            "BasicBlock 256",
            lambda: BasicBlock(w, w),
            w,
            f"18C^2 + BN 4C = {18 * w * w + 4 * w:,}",
        ),
        Design(
            "basic vs bottleneck block",
            "Bottleneck 256 (64 inner)",
            lambda: Bottleneck(w, w),
            w,
            f"C^2/2 + 9C^2/16 + BN 3C = {w * w // 2 + 9 * w * w // 16 + 3 * w:,}",
        ),
    ]


def measure(design: Design) -> dict:
    with on_meta():  # shapes only: counting needs no weights
        module = design.build()
    summary = summarize(module, (design.channels, SIDE, SIDE))
    field = (
        summary.rows[-1].receptive_field if summary.rows[-1].receptive_field is not None else main_path_field(module)
    )
    return {
        "comparison": design.pair,
        "design": design.name,
        "params": count_params(module),
        "formula": design.formula,
        "macs": summary.total_macs,
        "receptive_field": field,
    }


# ------------------------------------------------------------------------------------------- trained twins


def kernel_net(kernel: int, in_chans: int, num_classes: int, width: int = 32) -> nn.Sequential:
    """A small classifier whose two stages are each one 5x5 conv (kernel=5) or two 3x3 convs (kernel=3), the same
    receptive field; a 3x3 stem before them, a 2x2 max-pool after each, global average pool and linear at the end."""

    def stage() -> list[nn.Module]:
        units = (
            [conv_norm_act(width, width, 5)]
            if kernel == 5
            else [conv_norm_act(width, width, 3), conv_norm_act(width, width, 3)]
        )
        return [*units, nn.MaxPool2d(2)]

    return nn.Sequential(
        conv_norm_act(in_chans, width, 3),
        *stage(),
        *stage(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


def train_twins(options: ExperimentOptions) -> list[dict]:
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    rows = []
    for kernel, label in ((5, "5x5 net"), (3, "3x3-stack net")):
        torch.manual_seed(options.seed)
        model = kernel_net(kernel, data.in_chans, data.num_classes)
        results = train(
            options,
            data,
            f"kernel-net-{kernel}x{kernel}",
            f"train-{kernel}x{kernel}",
            model=model,
            epochs=options.epochs_or(1, 5),
        )
        rows.append(
            {
                "comparison": f"trained on {data.name}, {results['epochs']} epoch(s)",
                "design": label,
                "params": results["params"],
                "formula": "",
                "macs": results["macs"],
                "receptive_field": None,
                "test_accuracy_pct": round(100 * results["test_accuracy"], 2),
                "train_seconds": round(results["train_seconds"], 1),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------- the experiment


def short(count: int) -> str:
    """102400 -> "102K", 1638400 -> "1.64M", 5138022400 -> "5.14G"."""
    for scale, suffix in ((1e9, "G"), (1e6, "M")):
        if count >= scale:
            return f"{count / scale:.2f}{suffix}"
    return f"{count / 1e3:.0f}K"


def plot(rows: list[dict], path) -> None:
    names = [r["design"] for r in rows]
    pairs = list(dict.fromkeys(r["comparison"] for r in rows))
    colors = [f"C{pairs.index(r['comparison'])}" for r in rows]  # one colour per comparison
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", f"MACs at {SIDE}x{SIDE}")):
        bars = ax.bar(range(len(rows)), [r[key] for r in rows], color=colors)
        ax.bar_label(bars, labels=[short(r[key]) for r in rows], fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Same receptive field, fewer weights: 3x3 stacks and 1x1 bottlenecks (counted by cnnlab.measure)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@register_experiment("kernels", "one 5x5 vs two 3x3, 7x7 vs three 3x3, 1x1 bottlenecks: params, MACs, receptive fields")
def run(options: ExperimentOptions) -> ExperimentResult:
    rows = [measure(design) for design in designs()]
    plot(rows, options.out / "kernels.png")
    by_name = {r["design"]: r for r in rows}
    columns = ["comparison", "design", "params", "formula", "macs", "receptive_field"]
    claims = []  # only the trained twins (full mode) vary by seed; the counts are exact
    if not options.quick:
        rows += train_twins(options)
        columns += ["test_accuracy_pct", "train_seconds"]
        claims.append(
            Claim(
                "the 3x3-stack net (same receptive field, fewer weights) scores a higher test accuracy than the "
                "5x5 net",
                "test_accuracy_pct",
                {"design": "3x3-stack net"},
                {"design": "5x5 net"},
            )
        )

    def ratio(a: str, b: str) -> float:
        return by_name[a]["params"] / by_name[b]["params"]

    findings = [
        f"At C={CHANNELS}, two 3x3 convs see the same 5x5 window as one 5x5 with "
        f"{1 - 1 / ratio('one 5x5', 'two 3x3'):.0%} fewer parameters ({by_name['two 3x3']['params']:,} vs "
        f"{by_name['one 5x5']['params']:,}), and three 3x3 convs replace a 7x7 with "
        f"{1 - 1 / ratio('one 7x7', 'three 3x3'):.0%} fewer ({by_name['three 3x3']['params']:,} vs "
        f"{by_name['one 7x7']['params']:,}); MACs shrink by the same factors because every conv keeps the "
        f"{SIDE}x{SIDE} map.",
        f"At 256 channels the 1x1-5x5-1x1 bottleneck needs "
        f"{ratio('naive 5x5 256->256', '1x1-5x5-1x1 (64 inner)'):.1f}x fewer parameters than the naive 5x5 "
        f"({by_name['1x1-5x5-1x1 (64 inner)']['params']:,} vs {by_name['naive 5x5 256->256']['params']:,}), and "
        f"ResNet's Bottleneck block {ratio('BasicBlock 256', 'Bottleneck 256 (64 inner)'):.1f}x fewer than a "
        f"BasicBlock ({by_name['Bottleneck 256 (64 inner)']['params']:,} vs {by_name['BasicBlock 256']['params']:,}, "
        f"BN included), though its receptive field is 3, not 5.",
    ]
    if not options.quick:
        five, three = rows[-2], rows[-1]
        findings.append(
            f"Trained with one recipe, the 3x3-stack net reached {three['test_accuracy_pct']:.2f}% test accuracy "
            f"with {three['params']:,} parameters, the 5x5 net {five['test_accuracy_pct']:.2f}% "
            f"with {five['params']:,}."
        )
    return ExperimentResult(
        title=f"Kernel sizes and bottlenecks (C={CHANNELS}, MACs per image at {SIDE}x{SIDE})",
        columns=columns,
        rows=rows,
        findings=findings,
        claims=claims,
        plots=["kernels.png"],
        config={
            "channels": CHANNELS,
            "wide_channels": WIDE,
            "bottleneck_inner": BOTTLENECK_INNER,
            "side": SIDE,
            "trained": not options.quick,
        },
    )
