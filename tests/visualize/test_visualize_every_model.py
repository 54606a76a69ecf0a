"""Every registered model, random weights, its smallest input (at least 16 px): the feature maps have the shapes
`cnnlab summary` reports, and Grad-CAM and saliency maps are finite, of input size and in [0, 1]."""

import pytest
import torch
from torch import nn
from zoo_sample import zoo_loop

import cnnlab
from cnnlab.measure import summarize
from cnnlab.models.base import min_input_size

MODELS = zoo_loop(cnnlab.list_models())  # the big variants skip in `make test` (tests/zoo_sample.py)


POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def channels_after(module: nn.Module, output_shape: tuple[int, ...]) -> int | None:
    """The channel count a layer expects of its input, if it says (a pooling layer keeps it: its output's)."""
    if isinstance(module, POOLS):
        return output_shape[0]
    for attribute in ("in_channels", "num_features"):
        if hasattr(module, attribute):
            return getattr(module, attribute)
    shape = getattr(module, "normalized_shape", None)
    return shape[0] if shape else None


def stage_shape_from_summary(model: nn.Module, rows, stage: str) -> tuple[int, int, int]:
    """(channels, h, w) of a stage's output, read off the summary's rows, which are leaf layers only: the spatial
    size of the stage's last leaf (a concatenating stage's branches all share it) and the channels the first
    later layer takes (a concatenation has more than any one branch)."""
    modules = dict(model.named_modules())
    inside = [i for i, row in enumerate(rows) if row.name == stage or row.name.startswith(stage + ".")]
    _, h, w = rows[inside[-1]].output_shape
    for row in rows[inside[-1] + 1 :]:
        channels = channels_after(modules[row.name], row.output_shape)
        if channels is not None:
            return channels, h, w
    raise AssertionError(f"no layer after {stage} says how many channels it takes")


@pytest.mark.parametrize("name", MODELS)
def test_maps_of_every_model(name):
    torch.manual_seed(0)
    model = cnnlab.create_model(name, num_classes=4).eval()
    side = max(min_input_size(model), 16)
    images = torch.randint(0, 256, (2, model.in_chans, side, side), dtype=torch.uint8)
    rows = [row for row in summarize(model, (model.in_chans, side, side)).rows if row.name != "(other)"]

    reported = {row.name: row.output_shape for row in rows}  # a layer called twice: its last call, as feature_maps
    maps = cnnlab.feature_maps(model, images, layers=list(reported))
    assert {name: tuple(m.shape[1:]) for name, m in maps.items()} == reported
    assert all(m.shape[0] == 2 for m in maps.values())

    stages = cnnlab.feature_maps(model, images)
    assert list(stages) == list(model.stage_names)
    for stage, tensor in stages.items():
        assert tuple(tensor.shape[1:]) == stage_shape_from_summary(model, rows, stage), stage

    for method in ("gradcam", "saliency"):
        heat = cnnlab.attribution(model, images, method=method, target=[0, 3])
        assert heat.shape == (2, side, side)
        assert torch.isfinite(heat).all()
        assert heat.min() >= 0 and heat.max() <= 1
    assert heat.amax(dim=(1, 2)).tolist() == [1.0, 1.0]  # saliency of random weights is never all zero
