"""Every registered model honours the ImageClassifier interface (a loop over list_models(), so a family file
that lands is covered without an edit here). In `make test` the big variants skip the per-model checks, their
siblings running the same code (tests/zoo_sample.py); `make test-zoo` runs them too.

Each model is built once per module (small_input=True where the builder takes it, so inputs stay tiny) and
run with batch 2 at its smallest accepted side, found on the meta device (at least 8 pixels). Most of the
time goes to each model's first forward at a new shape, so the checks share the fixture's eval logits.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from twins import n_params
from zoo_sample import zoo_loop

from cnnlab.engine.trainer import classification_loss
from cnnlab.errors import CnnlabError
from cnnlab.models.base import ImageClassifier
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, list_models, min_input_size, model_info

MODELS = list_models()
LOOPED = zoo_loop(MODELS)  # the big variants skip in `make test` (tests/zoo_sample.py)
BATCH = 2
GRADIENT_LIMIT = 40_000_000  # bigger models skip the backward pass (time); they still run in training mode
HYPOTHESIS_REAL_LIMIT = 30_000_000  # bigger models run the random-config test on the meta device (shapes only)


@functools.cache  # probed by building on meta, which for a deep narrow net (resnet1202) costs seconds
def small_kwargs(name: str) -> dict:
    """small_input=True for builders that take it (ImageNet families); {} for the CIFAR-sized ones."""
    try:
        with on_meta():
            create_model(name, small_input=True)
    except TypeError:  # no such keyword, or the builder already fixes it
        return {}
    return {"small_input": True}


@functools.cache
def default_size(name: str) -> int:
    """Parameters at the default channels and classes: where the random-config test runs (another in_chans or
    num_classes moves the count by a first conv's and a classifier's share, not across the limit's order)."""
    with on_meta():
        return n_params(create_model(name, **small_kwargs(name)))


def build(name: str, **kwargs) -> ImageClassifier:
    torch.manual_seed(0)
    return create_model(name, **small_kwargs(name), **kwargs)


class Built:
    def __init__(self, name: str) -> None:
        self.name = name
        self.model = build(name).eval()
        self.min_side = min_input_size(name, **small_kwargs(name))  # probed on meta; cached for self.model too
        self.side = max(self.min_side, 8)
        self.size = n_params(self.model)
        torch.manual_seed(1)
        self.x = torch.randn(BATCH, self.model.in_chans, self.side, self.side)
        with torch.no_grad():
            self.logits = self.model(self.x)


@pytest.fixture(scope="module", params=LOOPED)
def built(request) -> Built:
    return Built(request.param)


def test_registry_is_populated():
    # The tutorials' networks at least; the families add the rest.
    assert {"lenet5", "simple_cnn", "mini_vgg", "simple_resnet", "tiny_resnet", "mini_resnet"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_metadata_is_complete(name: str):
    info = model_info(name)
    assert info.family.strip() and info.key_idea.strip()
    assert re.search(r"arXiv:\d{4}\.\d{4,5}|DOI 10\.\d{4,}/\S+", info.paper), info.paper
    assert 1980 <= info.year <= 2030
    assert len(info.input_size) == 3 and all(isinstance(v, int) and v > 0 for v in info.input_size)
    assert info.input_size[0] in (1, 3)
    assert info.builder.__doc__ and info.builder.__doc__.strip()
    if info.twin is not None:
        assert info.twin in torchvision.models.list_models(), info.twin


def test_output_shape(built: Built):
    assert built.logits.shape == (BATCH, built.model.num_classes)
    assert built.model.num_classes == model_info(built.name).default_num_classes


def test_deterministic_in_eval(built: Built):
    with torch.no_grad():
        assert torch.equal(built.model(built.x), built.logits)


def test_head_of_features_is_forward(built: Built):
    with torch.no_grad():
        features = built.model.forward_features(built.x)
        assert torch.equal(built.model.forward_head(features), built.logits)
        pre_logits = built.model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (BATCH, built.model.get_classifier().weight.shape[1])  # Linear or 1x1-conv head


def test_training_mode_is_finite_and_the_loss_reaches_every_parameter(built: Built):
    # Finiteness is checked in training mode: in eval mode a fresh BatchNorm (running mean 0, var 1) is the
    # identity, so at random init the 600 residual additions of resnet1202 overflow to NaN.
    # The trainer's own loss (GoogLeNet's auxiliary heads included) must give every parameter a gradient: DDP runs
    # with find_unused_parameters=False, which fails on the second step of a model with an unused parameter.
    model = built.model.train()
    x = built.x.clone().requires_grad_(built.size <= GRADIENT_LIMIT)
    targets = torch.arange(BATCH) % built.model.num_classes
    try:
        with torch.set_grad_enabled(x.requires_grad):
            output = model(x)
            loss, out = classification_loss(output, targets, label_smoothing=0.0, aux_weight=0.3)
            if x.requires_grad:
                loss.backward()
        without_gradient = [name for name, p in model.named_parameters() if p.grad is None]
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    assert out.shape == (BATCH, built.model.num_classes) and torch.isfinite(out).all()
    if x.requires_grad:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        assert without_gradient == []


def test_stages(built: Built):
    stages = built.model.stages()
    assert stages and all(isinstance(stage, nn.Module) for stage in stages)
    submodules = {id(module) for module in built.model.modules()}
    assert all(id(stage) in submodules for stage in stages)


def test_min_input_size(built: Built):
    """The real model runs at the side found on the meta device and refuses one pixel less, naming the minimum."""
    side, chans = built.min_side, built.model.in_chans
    assert min_input_size(built.model) == side
    with torch.no_grad():
        assert built.model(torch.zeros(1, chans, side, side)).shape == (1, built.model.num_classes)
        if side > 1:
            message = (
                f"input {chans}x{side - 1}x{side - 1} is too small for {built.name}: "
                f"the minimum is {chans}x{side}x{side}"
            )
            with pytest.raises(CnnlabError, match=message):
                built.model(torch.zeros(1, chans, side - 1, side - 1))


def test_one_channel_five_classes(built: Built):
    model = build(built.name, num_classes=5, in_chans=1).eval()
    with torch.no_grad():
        out = model(built.x[:, :1])
    assert model.num_classes == 5 and model.in_chans == 1
    assert out.shape == (BATCH, 5) and torch.isfinite(out).all()


def test_reset_classifier(built: Built):
    # Defined last: it replaces the shared model's head.
    built.model.reset_classifier(7)
    assert built.model.num_classes == 7 and built.model.get_classifier().weight.shape[0] == 7
    with torch.no_grad():
        assert built.model(built.x).shape == (BATCH, 7)


@pytest.mark.parametrize("name", LOOPED)
@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(in_chans=st.integers(1, 4), num_classes=st.integers(1, 20))
def test_random_channels_and_classes(name: str, in_chans: int, num_classes: int):
    kwargs = dict(small_kwargs(name), in_chans=in_chans, num_classes=num_classes)
    device = "cpu" if default_size(name) <= HYPOTHESIS_REAL_LIMIT else "meta"
    with torch.device(device):
        model = create_model(name, **kwargs).eval()
        side = max(min_input_size(model), 8)
        with torch.no_grad():
            out = model(torch.randn(BATCH, in_chans, side, side))
    assert model.in_chans == in_chans and model.num_classes == num_classes
    assert out.shape == (BATCH, num_classes)
    if device == "cpu":
        assert torch.isfinite(out).all()
