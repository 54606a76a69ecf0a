"""One builder signature for the whole zoo: `builder(num_classes=<default>, in_chans=<default>, **kwargs)`, the
defaults being the model's own (`ModelInfo`), and the registry living with the models."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.models import _registry
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, list_models, model_info

MODELS_DIR = Path(cnnlab.__file__).parent / "models"


@pytest.mark.parametrize("name", list_models())
def test_every_builder_takes_num_classes_in_chans_and_kwargs(name: str):
    info = model_info(name)
    parameters = list(inspect.signature(inspect.unwrap(info.builder)).parameters.values())
    assert [(p.name, p.default) for p in parameters[:2]] == [
        ("num_classes", info.default_num_classes),
        ("in_chans", info.input_size[0]),
    ]
    assert parameters[-1].kind is inspect.Parameter.VAR_KEYWORD
    with on_meta():
        positional, keyword = info.builder(7, 2), create_model(name, num_classes=7, in_chans=2)
    assert [tuple(p.shape) for p in positional.parameters()] == [tuple(p.shape) for p in keyword.parameters()]


def test_the_registry_lives_with_the_models():
    assert cnnlab.create_model is _registry.create_model and cnnlab.registry.model_info is _registry.model_info
    # A model file that imported cnnlab.registry would find it half-initialised (it imports this package).
    offenders = [
        path.name
        for path in MODELS_DIR.glob("*.py")
        if re.search(r"^from cnnlab\.registry import|^import cnnlab\.registry", path.read_text(), re.M)
    ]
    assert offenders == []


@pytest.mark.slow  # builds the whole zoo (on the meta device)
def test_the_fast_suites_zoo_sample_is_each_familys_smallest():
    from zoo_sample import FAMILY_REPRESENTATIVES

    by_family = {}
    for name in list_models():
        with on_meta():
            params = sum(p.numel() for p in create_model(name).parameters())
        by_family.setdefault(model_info(name).family, []).append((params, name))
    assert FAMILY_REPRESENTATIVES == {min(models)[1] for models in by_family.values()}


def test_each_big_variant_runs_its_siblings_code_at_a_bigger_size():
    """The loops skip a big variant in `make test` because its sibling exercises the same code: the same model
    class, no kind of layer the sibling lacks, and more parameters."""
    from zoo_sample import BIG_VARIANTS

    def layer_kinds(model: torch.nn.Module) -> set[type]:
        return {type(module) for module in model.modules()}

    for big, sibling in BIG_VARIANTS.items():
        with on_meta():
            variant, kept = create_model(big), create_model(sibling)
        assert type(variant) is type(kept), big
        assert layer_kinds(variant) <= layer_kinds(kept), (big, layer_kinds(variant) - layer_kinds(kept))
        assert sum(p.numel() for p in variant.parameters()) > sum(p.numel() for p in kept.parameters()), big
