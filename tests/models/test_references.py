"""A learner's own network from a file or a module: parsing, building with the arguments it takes, the guarded
forward pass, every failure as one typed line, and the trust rule for a run's copy of the code."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from cnnlab.models.references import (
    ModelReferenceError,
    build_from_reference,
    check_model,
    constructor_arguments,
    is_reference,
    parse_reference,
    source_sha256,
)
from cnnlab.models.trust import UntrustedCode, is_trusted, remember, require_trust

GOOD = """
import torch
from torch import nn


class MyCNN(nn.Module):
    def __init__(self, num_classes=10, in_chans=1, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def tiny(num_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


def helper():
    return 3
"""


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "my_nets.py"
    path.write_text(textwrap.dedent(GOOD))
    return path


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_references_are_told_apart_from_zoo_names_and_specs():
    assert is_reference("nets/my_cnn.py:MyCNN") and is_reference("mypkg.nets:build")
    assert not is_reference("resnet18") and not is_reference("conv 8 k3; relu")
    assert not is_reference("res(conv 8 k3 p1)") and not is_reference("my cnn.py:X")
    ref = parse_reference(" nets/my_cnn.py:MyCNN ")
    assert (ref.kind, ref.target, ref.name) == ("file", "nets/my_cnn.py", "MyCNN")
    assert parse_reference("mypkg.nets:build").kind == "module"


def test_a_class_gets_the_arguments_its_signature_takes(nets):
    ref = parse_reference(f"{nets}:MyCNN")
    model = build_from_reference(ref, num_classes=7, in_chans=3)
    assert model.head.out_features == 7 and model.features[0].in_channels == 3
    assert constructor_arguments(ref, 7, 3) == {"num_classes": 7, "in_chans": 3}
    check_model(model, (3, 20, 20), num_classes=7)
    assert model.training  # the mode is restored


def test_a_function_gets_only_what_it_takes_and_a_module_path_works(nets, monkeypatch):
    ref = parse_reference(f"{nets}:tiny")
    assert constructor_arguments(ref, 5, 1) == {"num_classes": 5}
    model = build_from_reference(ref, num_classes=5, in_chans=1)
    check_model(model, (1, 4, 4), num_classes=5)  # the lazy layer is sized by the check's forward pass
    monkeypatch.syspath_prepend(str(nets.parent))
    from_module = build_from_reference(parse_reference("my_nets:MyCNN"), num_classes=4, in_chans=1)
    assert from_module.head.out_features == 4
    sys.modules.pop("my_nets", None)


def test_the_source_hash_is_the_files(nets):
    import hashlib

    assert source_sha256(parse_reference(f"{nets}:MyCNN")) == hashlib.sha256(nets.read_bytes()).hexdigest()


def test_each_failure_is_one_line(tmp_path, nets):
    broken = write(tmp_path, "broken.py", "import torch\nx = undefined_name\n")
    syntax = write(tmp_path, "syntax.py", "def f(:\n")
    cases = {
        f"{tmp_path}/missing.py:Net": "no file",
        f"{nets}:Nope": "no 'Nope' in it; it defines: MyCNN, helper, tiny",
        f"{nets}:torch": "not an nn.Module",
        f"{nets}:helper": "returned a int, not an nn.Module",
        f"{broken}:Net": "broken.py:2: NameError",
        f"{syntax}:Net": "syntax.py:1: SyntaxError",
        "no_such_package_xyz.nets:Net": "importing it failed",
    }
    for text, expected in cases.items():
        with pytest.raises(ModelReferenceError) as error:
            build_from_reference(parse_reference(text), num_classes=10, in_chans=1)
        assert expected in str(error.value) and "\n" not in str(error.value), (text, str(error.value))


def test_the_guarded_forward_names_the_layer_and_the_shape():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(100, 10))  # 4*26*26 != 100
    with pytest.raises(ModelReferenceError) as error:
        check_model(model, (1, 28, 28), num_classes=10, label="my.py:Net")
    message = str(error.value)
    assert message.startswith("my.py:Net: the forward pass failed in layer '2' (input 2x2704)") and "\n" not in message
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
    with pytest.raises(ModelReferenceError, match=r"the output is \[2, 5\] for 2 images; it must be .*\[2, 10\]"):
        check_model(wrong, (1, 28, 28), num_classes=10)
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("cached", [False, True])
def test_a_zoo_net_too_small_names_the_layer_that_failed_whether_or_not_its_minimum_was_probed_before(
    cached, monkeypatch
):
    """The failed pass makes lenet5 probe its minimum side on a meta copy that carries the trail's hooks: those
    probe passes must not move the trail (they once named fc3 on a first failure, fc1 on a later one)."""
    from cnnlab.models import base
    from cnnlab.registry import create_model

    monkeypatch.setattr(base, "_min_side_cache", {})
    model = create_model("lenet5", num_classes=10, in_chans=1)
    if cached:
        base.min_input_size(model)
    with pytest.raises(ModelReferenceError) as error:
        check_model(model, (1, 16, 16), num_classes=10)
    assert str(error.value).startswith("LeNet5: the forward pass failed in layer 'fc1' (input 2x16): CnnlabError: ")
    assert str(error.value).endswith("input 1x16x16 is too small for lenet5: the minimum is 1x32x32")


def test_only_code_this_user_trained_runs_without_asking(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_STATE_DIR", str(tmp_path / "state"))
    sha = "ab" * 32
    assert not is_trusted(sha)
    with pytest.raises(UntrustedCode, match="--trust-code") as error:
        require_trust("run runs/x", sha)
    assert error.value.sha256 == sha and "\n" not in str(error.value)
    require_trust("run runs/x", sha, trust_code=True)  # the explicit opt-in
    remember(sha)
    require_trust("run runs/x", sha)
    assert is_trusted(sha) and (tmp_path / "state" / "trusted-code.json").is_file()
    (tmp_path / "state" / "trusted-code.json").write_text("{broken")
    assert not is_trusted(sha)  # a damaged store trusts nothing


def test_a_package_adds_models_through_the_entry_point_group(tmp_path, monkeypatch):
    """A tiny package laid out as pip installs it (its module and a .dist-info with entry_points.txt)."""
    from cnnlab.errors import PluginLoadWarning
    from cnnlab.models import _registry
    from cnnlab.registry import create_model, list_models, model_info

    (tmp_path / "tinyzoo_pkg").mkdir()
    (tmp_path / "tinyzoo_pkg" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from cnnlab.registry import register_model

            @register_model(family="TinyZoo", paper="none", year=2026, input_size=(1, 28, 28), key_idea="a plug-in")
            def tinyzoo_net(num_classes=10, in_chans=1, **kwargs):
                return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * 28 * 28, num_classes))
            """
        )
    )
    (tmp_path / "broken_pkg.py").write_text("raise RuntimeError('broken on purpose')\n")
    info = tmp_path / "tinyzoo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyzoo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cnnlab.models]\ntinyzoo = tinyzoo_pkg\nbroken = broken_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_plugins_loaded", False)
    try:
        with pytest.warns(PluginLoadWarning, match="'broken' .*RuntimeError: broken on purpose"):
            names = list_models("tinyzoo*")
        assert names == ["tinyzoo_net"] and model_info("tinyzoo_net").family == "TinyZoo"
        model = create_model("tinyzoo_net", num_classes=3)
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3) and model.model_name == "tinyzoo_net"
    finally:
        _registry._REGISTRY.pop("tinyzoo_net", None)
        sys.modules.pop("tinyzoo_pkg", None)
