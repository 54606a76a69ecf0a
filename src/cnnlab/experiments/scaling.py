"""EfficientNet compound scaling (Tan & Le 2019): what phi does to width, depth, resolution, params and MACs.

The B0-B7 table comes from the zoo's builder: each model is built on the meta device (shapes only, no memory) and
counted with cnnlab.measure at its own resolution, so all eight take well under a second. Full mode also trains a
small EfficientNet scaled four ways to about the same MACs: depth only, width only, resolution only, and the
compound phi = 1 step (depth x1.2, width x1.1, resolution x1.15), which sets the MAC budget the others match.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from cnnlab.data import ImageDataset, load_dataset
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, train
from cnnlab.measure import count_macs, count_params
from cnnlab.models.efficientnet import MBConvStage, efficientnet, efficientnet_scaling
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model
from cnnlab.repeats import Claim

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's grid-searched depth, width and resolution bases at phi = 1
PHIS = range(8)
TRAIN_SUBSET = 10_000  # training images for the trained comparison (full mode)
COLUMNS = (
    "model",
    "phi",
    "width",
    "beta^phi",
    "depth",
    "alpha^phi",
    "resolution",
    "224*gamma^phi",
    "params",
    "macs",
    "macs_vs_b0",
    "2^phi",
)


def scale_row(phi: int) -> dict:
    scale = efficientnet_scaling(phi)
    side = int(scale["resolution"])
    with on_meta():  # B7 holds 66M parameters; on meta it costs nothing to build or count
        model = create_model(f"efficientnet_b{phi}")
    return {
        "model": f"efficientnet_b{phi}",
        "phi": phi,
        "width": scale["width"],
        "depth": scale["depth"],
        "resolution": side,
        "alpha^phi": round(ALPHA**phi, 2),
        "beta^phi": round(BETA**phi, 2),
        "224*gamma^phi": round(224 * GAMMA**phi),
        "params": count_params(model),
        "macs": count_macs(model, (3, side, side)),
    }


# ------------------------------------------------------------------------------------------- trained comparison

# A small base for 28-32 px images: B0's first four stage types at reduced repeats (stem width 16).
SMALL_BASE = (
    MBConvStage(1, 3, 1, 16, 16, 1),
    MBConvStage(6, 3, 2, 16, 24, 2),
    MBConvStage(6, 5, 2, 24, 40, 2),
    MBConvStage(6, 3, 2, 40, 80, 2),
)


def small_net(width: float, depth: float, in_chans: int, num_classes: int, device: str | None = None):
    with torch.device(device or "cpu"):
        return efficientnet(width, depth, 0.2, num_classes, in_chans, small_input=True, base=SMALL_BASE)


def small_macs(width: float, depth: float, side: int, in_chans: int, num_classes: int) -> int:
    return count_macs(small_net(width, depth, in_chans, num_classes, "meta"), (in_chans, side, side))


def matched_variants(base_side: int, in_chans: int, num_classes: int) -> list[dict]:
    """Baseline, compound phi=1, and each single dimension scaled alone to the MACs closest to compound's."""
    compound = dict(width=BETA, depth=ALPHA, resolution=round(base_side * GAMMA))
    target = small_macs(compound["width"], compound["depth"], compound["resolution"], in_chans, num_classes)
    grids = {
        "depth only": [dict(width=1.0, depth=1 + d / 10, resolution=base_side) for d in range(1, 31)],
        "width only": [dict(width=1 + w / 20, depth=1.0, resolution=base_side) for w in range(1, 21)],
        "resolution only": [
            dict(width=1.0, depth=1.0, resolution=side) for side in range(base_side + 2, 2 * base_side + 1, 2)
        ],
    }
    variants = [
        dict(variant="baseline", width=1.0, depth=1.0, resolution=base_side),
        dict(variant="compound (phi=1)", **compound),
    ]
    for name, grid in grids.items():
        best = min(
            grid, key=lambda v: abs(small_macs(v["width"], v["depth"], v["resolution"], in_chans, num_classes) - target)
        )
        variants.append(dict(variant=name, **best))
    return variants


def resized(data: ImageDataset, side: int) -> ImageDataset:
    """The dataset at side x side (bilinear), keeping the original normalisation statistics."""
    if side == data.image_size:
        return data

    def resize(images: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(images.float(), size=(side, side), mode="bilinear", align_corners=False)
        return out.round().clamp(0, 255).to(torch.uint8).contiguous()

    return ImageDataset(
        f"{data.name}@{side}",
        resize(data.train_images),
        data.train_labels,
        resize(data.test_images),
        data.test_labels,
        data.classes,
        mean=data.mean,
        std=data.std,
        hflip=data.hflip,
    )


def train_variants(options: ExperimentOptions) -> list[dict]:
    """Train the five variants with one recipe on the first TRAIN_SUBSET training images (depthwise convs and SE
    make even a small EfficientNet slow on CPU: about 130 images/s on 2 cores for the baseline)."""
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    rows = []
    for variant in matched_variants(data.image_size, data.in_chans, data.num_classes):
        torch.manual_seed(options.seed)
        model = small_net(variant["width"], variant["depth"], data.in_chans, data.num_classes)
        name = variant["variant"].split(" ")[0]
        results = train(
            options,
            resized(data, variant["resolution"]),
            f"small-efficientnet-{name}",
            f"train-{name}",
            model=model,
            epochs=options.epochs_or(1, 3),
            train_subset=TRAIN_SUBSET,
        )
        rows.append(
            {
                **variant,
                "params": results["params"],
                "macs": results["macs"],
                "test_accuracy_pct": round(100 * results["test_accuracy"], 2),
                "train_seconds": round(results["train_seconds"], 1),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------- the experiment


def plot_scaling(rows: list[dict], path) -> None:
    phis = [r["phi"] for r in rows]
    fig, (params_ax, macs_ax) = plt.subplots(1, 2, figsize=(10, 4))
    params_ax.plot(phis, [r["params"] / 1e6 for r in rows], "o-")
    params_ax.set(xlabel="phi (B0 ... B7)", ylabel="parameters (millions)", yscale="log", title="parameters")
    macs_ax.plot(phis, [r["macs"] / 1e9 for r in rows], "o-", label="measured")
    macs_ax.plot(
        phis, [rows[0]["macs"] / 1e9 * 2**p for p in phis], "--", color="gray", label="B0 x 2^phi (the paper's aim)"
    )
    macs_ax.set(
        xlabel="phi (B0 ... B7)", ylabel="GMACs per image", yscale="log", title="MACs at each model's resolution"
    )
    macs_ax.legend()
    for ax in (params_ax, macs_ax):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("EfficientNet compound scaling, counted from the builder")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_trained(rows: list[dict], path, dataset: str) -> None:
    names = [r["variant"] for r in rows]
    fig, (acc_ax, macs_ax) = plt.subplots(1, 2, figsize=(11, 4))
    acc_ax.bar(names, [r["test_accuracy_pct"] for r in rows], color=[f"C{i}" for i in range(len(rows))])
    acc_ax.set(ylabel="test accuracy (%)", title=f"small EfficientNet on {dataset}")
    macs_ax.bar(names, [r["macs"] / 1e6 for r in rows], color=[f"C{i}" for i in range(len(rows))])
    macs_ax.set(ylabel="MMACs per image", title="cost (matched to compound)")
    for ax in (acc_ax, macs_ax):
        ax.tick_params(axis="x", labelrotation=25)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TRAINED_COLUMNS = ("width", "depth", "resolution", "params", "macs", "test_accuracy_pct", "train_seconds")


def trained_rows(options: ExperimentOptions, plots: list[str], config: dict) -> tuple[list[dict], str]:
    """Full mode: train the small base's matched variants, plot them, record them in `config`; return their table
    rows and the finding they give."""
    trained = train_variants(options)
    dataset = options.dataset_or_default()
    plot_trained(trained, options.out / "scaling_trained.png", dataset)
    plots.append("scaling_trained.png")
    config["trained_variants"] = trained
    rows = [{"model": f"small base: {row['variant']}", **{key: row[key] for key in TRAINED_COLUMNS}} for row in trained]
    best = max(trained, key=lambda r: r["test_accuracy_pct"])
    others = ", ".join(f"{r['variant']} {r['test_accuracy_pct']:.2f}%" for r in trained if r is not best)
    finding = (
        f"Trained on {dataset} at about equal MACs, {best['variant']} scored best "
        f"({best['test_accuracy_pct']:.2f}% test accuracy; {others})."
    )
    return rows, finding


def trained_claims() -> list[Claim]:
    """Tan & Le's claim on the trained rows (full mode): at about equal MACs, compound scaling beats scaling any
    one dimension alone."""
    compound = {"model": "small base: compound (phi=1)"}
    return [
        Claim(
            f"at about equal MACs, compound scaling scores a higher test accuracy than scaling {single}",
            "test_accuracy_pct",
            compound,
            {"model": f"small base: {single}"},
        )
        for single in ("depth only", "width only", "resolution only")
    ]


@register_experiment(
    "scaling", "EfficientNet B0-B7: phi, width, depth, resolution, params, MACs; scaling one way vs compound"
)
def run(options: ExperimentOptions) -> ExperimentResult:
    rows = [scale_row(phi) for phi in PHIS]
    for row in rows:
        row["macs_vs_b0"] = round(row["macs"] / rows[0]["macs"], 2)
        row["2^phi"] = 2 ** row["phi"]
    plot_scaling(rows, options.out / "scaling.png")
    plots, columns = ["scaling.png"], list(COLUMNS)
    b7 = rows[-1]
    findings = [
        f"From B0 to B7 the builder's models grow from {rows[0]['params'] / 1e6:.2f}M to {b7['params'] / 1e6:.2f}M "
        f"parameters ({b7['params'] / rows[0]['params']:.1f}x) and from {rows[0]['macs'] / 1e9:.3f} to "
        f"{b7['macs'] / 1e9:.2f} GMACs ({b7['macs_vs_b0']:.0f}x, against 2^7 = 128 if every phi step doubled the "
        "cost).",
        "The published width and depth multipliers are rounded and the resolutions hand-picked, so they only roughly "
        "follow alpha^phi, beta^phi and 224 gamma^phi (compare the columns).",
    ]
    config = {
        "alpha": ALPHA,
        "beta": BETA,
        "gamma": GAMMA,
        "macs_device": "meta",
        "trained": not options.quick,
        "train_subset": TRAIN_SUBSET,
        "small_base": [stage._asdict() for stage in SMALL_BASE],
    }
    claims = []  # only the trained rows (full mode) vary by seed; B0-B7 are exact counts
    if not options.quick:  # one table: the trained rows after B0-B7, in the shared columns
        trained, finding = trained_rows(options, plots, config)
        rows += trained
        columns += ["test_accuracy_pct", "train_seconds"]
        findings.append(finding)
        claims = trained_claims()
    return ExperimentResult(
        title="EfficientNet compound scaling: B0-B7 from the builder",
        columns=columns,
        rows=rows,
        findings=findings,
        claims=claims,
        plots=plots,
        config=config,
    )
