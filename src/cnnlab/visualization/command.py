"""`cnnlab visualize`: its flags, and the call of `visualize` they make (cli.py holds only the hook-up)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.visualization.options import SHOWS


def add_arguments(parser: argparse.ArgumentParser, positive_int) -> None:
    parser.add_argument(
        "source", metavar="RUN_DIR", help="a run directory; with --model and --weights, the first image"
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE")
    parser.add_argument("--from-test", type=positive_int, metavar="N", help="N seeded test images of the run's dataset")
    parser.add_argument("--misclassified", action="store_true", help="with --from-test: N images the model gets wrong")
    parser.add_argument(
        "--show",
        help=f"comma-separated, from {','.join(SHOWS)} (default: all but erf with images, filters alone without)",
    )
    parser.add_argument(
        "--layer",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="feature maps (and filters, for a conv) of this layer instead of the stages; repeatable",
    )
    parser.add_argument(
        "--target", type=int, metavar="CLASS", help="the class index the maps explain (default: the prediction)"
    )
    parser.add_argument("--out", help="output folder (default RUN_DIR/visualize)")
    parser.add_argument("--model", help="with --weights: the architecture of a torchvision ImageNet checkpoint")
    parser.add_argument("--weights", metavar="PATH", help="a torchvision ImageNet checkpoint (.pth or .safetensors)")


def run(args: argparse.Namespace) -> list[Path]:
    from cnnlab.visualization.loading import imagenet_subject
    from cnnlab.visualization.report import visualize

    images = list(args.images)
    if args.model or args.weights:  # an ImageNet checkpoint: every positional argument is an image
        if not (args.model and args.weights):
            raise CnnlabError("--model and --weights go together: the architecture and its ImageNet checkpoint")
        source, images = imagenet_subject(args.model, args.weights), [args.source, *images]
    else:
        source = args.source
    return visualize(
        source,
        images,
        from_test=args.from_test,
        misclassified=args.misclassified,
        show=args.show,
        layers=args.layer,
        target=args.target,
        out=args.out,
    )
