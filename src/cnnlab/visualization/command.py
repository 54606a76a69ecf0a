"""`cnnlab visualize`: the call of `visualize` its flags make (declared in cnnlab.options.commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.errors import CnnlabError


def run(args: argparse.Namespace) -> list[Path]:
    from cnnlab.building import ZOO, model_kind
    from cnnlab.visualization.loading import imagenet_subject, own_subject
    from cnnlab.visualization.report import visualize

    images = list(args.images)
    if args.model and model_kind(args.model) != ZOO:  # your own network, --weights optional: images only
        source, images = own_subject(args.model, args.weights, args.source), [args.source, *images]
    elif args.model or args.weights:  # an ImageNet checkpoint: every positional argument is an image
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
