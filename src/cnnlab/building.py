"""A run's model rebuilt from its recipe: the one builder training, evaluation, predict and export share.

It sits below training and inference, so it takes any object with the recipe's model fields (a `TrainConfig`,
whose home is the engine, satisfies `ModelRecipe`) and imports neither of them.

A model is named one of three ways, told apart here alone (`model_kind`):
    zoo        a registered name: "lenet5"
    reference  a network in code: "my_cnn.py:MyCNN" or "mypkg.nets:MyCNN" (cnnlab.models.references)
    spec       a layer spec: "conv 8 k3 p1; relu; maxpool 2; flatten; fc 10" (cnnlab.measure.spec; data, no code)
A new run from a reference records its code (`code_record`: reference, sha256, constructor arguments) and the
trainer copies the source into the run; a saved run is rebuilt from that copy, and only when its code may run
(`cnnlab.models.trust`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.measure.spec import LAYER_KINDS, build_layer_spec, split_outside_parentheses
from cnnlab.models import references, trust
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, list_models, model_info
from cnnlab.rundir import RunDir

ZOO, SPEC, REFERENCE = "zoo", "spec", "reference"


class ModelRecipe(Protocol):
    """The fields of a run's recipe that decide its network (`cnnlab.engine.config.TrainConfig` has them)."""

    model: str  # a registered model name, a reference to code, or a layer spec
    model_kwargs: dict  # extra builder arguments
    small_input: bool | None  # the CIFAR-style stem; None: decided by `wants_small_input`
    weights: str | None
    model_code: dict | None  # a reference's record (`code_record`), saved in config.json
    out: str | None  # the run's folder


def model_kind(model: str) -> str:
    """zoo, reference or spec (a registered name wins over a one-word spec such as "flatten")."""
    text = model.strip()
    if references.is_reference(text):
        return REFERENCE
    if text in list_models():
        return ZOO
    if any(ch in text for ch in " ;(") or text.lower() in LAYER_KINDS:
        return SPEC
    return ZOO


def model_label(model: str, width: int = 24) -> str:
    """A model as a table cell shows it: a zoo name as it is; a reference as its Name and where it is
    ("MyCNN (my_cnn.py)"); a spec as "spec: " and its first `width` characters (the run's config keeps it all)."""
    kind = model_kind(model)
    if kind == REFERENCE:
        reference = references.parse_reference(model)
        where = Path(reference.target).name if reference.kind == "file" else reference.target
        return f"{reference.name} ({where})"
    if kind == SPEC:
        text = " ".join(model.split())
        return f"spec: {text if len(text) <= width else text[: width - 1].rstrip() + '…'}"
    return model


def split_models(text: str) -> list[str]:
    """A comma-separated list of models ("plain20,resnet20", "my.py:Plain,my.py:Res") as its names: split on
    commas outside parentheses, so that a layer spec with a comma inside a group keeps it."""
    return [name.strip() for name in split_outside_parentheses(text, ",", text) if name.strip()]


def check_model_name(config: ModelRecipe) -> None:
    """Cheap checks before anything loads: a spec parses (built on
    the meta device), a reference is well formed and its file exists; a zoo-only option on an own network is
    refused. No user code runs here: the guarded forward pass comes when the model is built."""
    kind = model_kind(config.model)
    if kind == ZOO:  # an unknown name fails when built, with the closest names (a given module's label passes)
        return
    label = f"'{config.model}'"
    if config.weights:
        raise CnnlabError(f"--weights loads a zoo model's pretrained weights; {label} is your own network")
    if config.small_input:
        raise CnnlabError(f"--small-input swaps a zoo model's stem; {label} is your own network: change its layers")
    if config.model_kwargs:
        raise CnnlabError(f"model_kwargs go to a zoo model's builder; {label} is your own network")
    if kind == SPEC:
        with on_meta():
            build_layer_spec(config.model, 3)
    else:
        reference = references.parse_reference(config.model)
        if reference.kind == "file":
            references.source_file(reference)


def check_model_text(model: str) -> None:
    """`check_model_name` for a model named alone, with no recipe around it (an experiment's --models)."""
    check_model_name(SimpleNamespace(model=model, weights=None, small_input=None, model_kwargs={}))


def wants_small_input(model: str, image_size: int) -> bool:
    """ImageNet-style models (default input >= 64 px) get the CIFAR-style stem on small images, so their early
    strides do not shrink a 28x28 image to nothing. Never for an own network (it is built as written)."""
    if model_kind(model) != ZOO:
        return False
    return model_info(model).input_size[1] >= 64 and image_size < 64


def build_model(
    config: ModelRecipe,
    num_classes: int,
    in_chans: int,
    image_size: int,
    run_dir: str | Path | None = None,
    trust_code: bool = False,
) -> nn.Module:
    """A saved run's model, as its recipe says (`config.small_input` None: the default stem). A network in code
    is rebuilt from RUN_DIR/model_source.py when `run_dir` is given (a run without that copy is refused); that code
    runs only when trusted (`trust.require_trust`: trained here by this user, or `trust_code`)."""
    kind = model_kind(config.model)
    if kind == ZOO:
        kwargs = builder_kwargs(config.model_kwargs, bool(config.small_input))
        return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)
    if kind == REFERENCE and run_dir is not None:  # only the run's own copy: never the file its config names
        return _from_run_copy(config.model, Path(run_dir), num_classes, (in_chans, image_size, image_size), trust_code)
    return build_own(config.model, num_classes, (in_chans, image_size, image_size))


def build_new_model(config: ModelRecipe, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A new run's model: `config.small_input` None is decided here (`wants_small_input`) and recorded in
    `config`, so that the run's config.json saves the stem it trains with. One registry look-up for a zoo model, so
    that its name goes down to the registry once (scripts/model_name_path.py counts the climbs back). A network in
    code is checked (`check_model_name`) and its code recorded in `config.model_code`; a resumed one (its record
    saved, its folder in `config.out`) is rebuilt from the run's copy."""
    info = _zoo_info(config.model)
    if info is not None:
        if config.small_input is None:
            config.small_input = info.input_size[1] >= 64 and image_size < 64  # wants_small_input's rule
        kwargs = builder_kwargs(config.model_kwargs, config.small_input)
        return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)
    check_model_name(config)
    if model_kind(config.model) == ZOO:
        model_info(config.model)  # not registered: fails here, with the closest names
    config.small_input = False
    if getattr(config, "model_code", None) and config.out and RunDir(config.out).model_source.is_file():
        return build_model(config, num_classes, in_chans, image_size, run_dir=config.out)
    model = build_own(config.model, num_classes, (in_chans, image_size, image_size))
    if model_kind(config.model) == REFERENCE and not getattr(config, "model_code", None):
        config.model_code = code_record(config.model, num_classes, in_chans)
    return model


def _zoo_info(model: str):
    """The registry's entry for a registered name; None for anything else (a reference, a spec, a typo)."""
    try:
        return model_info(model)
    except CnnlabError:
        return None


def build_own(model: str, num_classes: int | None, input_shape: tuple[int, int, int]) -> nn.Module:
    """A spec or a reference, built and checked by one guarded forward pass (which also sizes a spec's lazy
    layers): a failure names the layer and the shape; the output must be [N, num_classes] (None: the network's
    own class count, as its constructor's default or the spec's last layer gives it)."""
    if model_kind(model) == SPEC:
        net, label = build_layer_spec(model, input_shape[0]), f"spec '{model}'"
    else:
        reference = references.parse_reference(model)
        net, label = references.build_from_reference(reference, num_classes, input_shape[0]), model
    references.check_model(net, input_shape, num_classes, label=label)
    net.model_name = model  # what summaries and plots call it
    return net


def _from_run_copy(
    model: str, run_dir: Path, num_classes: int, input_shape: tuple[int, int, int], trust_code: bool
) -> nn.Module:
    copy = RunDir(run_dir).model_source
    if not copy.is_file():
        raise CnnlabError(f"{run_dir} trained {model} but has no copy of its source ({copy.name}); it cannot rebuild")
    trust.require_trust(str(run_dir), hashlib.sha256(copy.read_bytes()).hexdigest(), trust_code)
    name = references.parse_reference(model).name
    reference = references.ModelReference(model, "file", str(copy), name)
    net = references.build_from_reference(reference, num_classes, input_shape[0])
    references.check_model(net, input_shape, num_classes, label=model)
    net.model_name = model
    return net


def code_record(model: str, num_classes: int, in_chans: int) -> dict | None:
    """What config.json keeps of a network in code (None for zoo models and specs): the reference, the SHA-256
    of its source, the constructor arguments and where the source was (`origin`; the run keeps its own copy)."""
    if model_kind(model) != REFERENCE:
        return None
    reference = references.parse_reference(model)
    source = references.source_file(reference)
    return {
        "reference": model,
        "sha256": references.source_sha256(reference),
        "arguments": references.constructor_arguments(reference, num_classes, in_chans),
        "origin": str(Path(source).resolve()),
    }


def builder_kwargs(model_kwargs: dict, small_input: bool) -> dict:
    return {**model_kwargs, "small_input": True} if small_input else dict(model_kwargs)
