"""The registry (list_models, model_info, create_model) and the minimum-input-size machinery."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import base
from cnnlab.models.lenet import lenet5
from cnnlab.registry import create_model, list_models, min_input_size, model_info, register_model


def test_list_models_filters_and_sorts():
    names = list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    assert list_models("mini_*") == ["mini_resnet", "mini_vgg"]
    assert list_models("no_such_*") == []


def test_unknown_name_suggests_the_closest():
    with pytest.raises(CnnlabError, match=r"unknown model 'mini_vgq'; did you mean: mini_vgg"):
        model_info("mini_vgq")
    with pytest.raises(CnnlabError, match="unknown model"):
        create_model("mini_vgq")
    with pytest.raises(CnnlabError, match="unknown model"):
        min_input_size("mini_vgq")


def test_bad_counts_are_user_errors():
    with pytest.raises(CnnlabError, match="num_classes must be at least 1, got 0"):
        create_model("mini_vgg", num_classes=0)
    with pytest.raises(CnnlabError, match="in_chans must be at least 1, got 0"):
        create_model("mini_vgg", in_chans=0)


def test_a_name_registers_once():
    def lenet5(**kwargs):  # same name as the registered builder
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="model 'lenet5' is registered twice"):
        register_model(family="x", paper="x", year=2000, input_size=(1, 8, 8), key_idea="x")(lenet5)


def test_builders_stamp_their_name():
    # Direct builder calls and create_model both name the model, for error messages.
    assert lenet5().model_name == "lenet5"
    assert create_model("simple_cnn").model_name == "simple_cnn"
    assert model_info("lenet5").builder is lenet5
    assert lenet5.__name__ == "lenet5" and "LeNet-5" in lenet5.__doc__


def test_input_size_sizes_only_sized_heads():
    assert create_model("lenet5", input_size=28).fc1.in_features == 16 * 4 * 4
    assert create_model("lenet5").fc1.in_features == 16 * 5 * 5
    assert create_model("mini_vgg", input_size=28).fc.in_features == 128  # global pool: ignored


def test_default_num_classes():
    assert model_info("mini_vgg").default_num_classes == 10
    assert create_model("mini_vgg").num_classes == 10


# Minimum sides worked out by hand: side -> floor((side + 2 * padding - kernel) / stride) + 1 per layer.
HAND_MINIMA = {
    # conv5 -> pool2 -> conv5 -> pool2 without padding takes only 32..35; the flatten head fixes it to 32.
    "lenet5": 32,
    # two same-padded convs and two 2x2 pools; the flatten head was sized for 28 (28..31 run).
    "simple_cnn": 28,
    # three 2x2 max-pools: 8 -> 4 -> 2 -> 1; 7 -> 3 -> 1 -> 0 fails.
    "mini_vgg": 8,
    # 7x7/2 pad 3: 1 -> 1; 3x3/2 max-pool pad 1: 1 -> 1; every later conv is padded: 1x1 is enough.
    "resnet18": 1,
    # 11x11/4 pad 2: 63 -> 15; pool 3/2: 7; conv 5 pad 2: 7; pool: 3; three padded 3x3: 3; pool: 1.
    # 62 -> 14 -> 6 -> 6 -> 2, and the last 3x3 pool fails on 2x2.
    "alexnet": 63,
}


@pytest.mark.parametrize("name", HAND_MINIMA)
def test_min_input_size_by_hand(name: str):
    if name not in list_models():
        pytest.skip(f"{name} is not registered")
    assert min_input_size(name) == HAND_MINIMA[name]


def test_min_input_size_of_a_model_and_of_small_input():
    model = create_model("mini_vgg", in_chans=1)
    assert min_input_size(model) == 8
    if "resnet18" in list_models():
        assert min_input_size("resnet18", small_input=True) == 1


def test_too_small_input_names_the_minimum():
    if "alexnet" not in list_models():
        pytest.skip("alexnet is not registered")
    with torch.device("meta"):  # no init, no arithmetic: the check works the same on meta tensors
        model = create_model("alexnet")
        with pytest.raises(CnnlabError, match=r"^input 3x16x16 is too small for alexnet: the minimum is 3x63x63$"):
            model(torch.zeros(2, 3, 16, 16))


def test_too_small_input_on_real_tensors():
    model = create_model("mini_vgg").eval()
    with pytest.raises(CnnlabError, match=r"^input 3x7x30 is too small for mini_vgg: the minimum is 3x8x8$"):
        model(torch.zeros(2, 3, 7, 30))
    assert model(torch.zeros(2, 3, 8, 30)).shape == (2, 10)  # a side of 8 or more each way runs
    assert model.training is False  # the probe restored the mode it found


def test_wrong_channels_and_rank():
    model = create_model("mini_vgg")
    with pytest.raises(CnnlabError, match=r"^input 1x32x32 has 1 channel\(s\) but mini_vgg takes 3 \(see in_chans\)$"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(
        CnnlabError, match=r"takes a batch of images \[B, C, H, W\], not a tensor of shape \[3, 32, 32\]"
    ):
        model(torch.zeros(3, 32, 32))


def test_other_failures_keep_their_own_error():
    model = create_model("mini_vgg")
    with pytest.raises(RuntimeError) as failure:  # a float64 image of a fine size: a genuine error
        model(torch.zeros(2, 3, 32, 32, dtype=torch.float64))
    assert not isinstance(failure.value, CnnlabError)


def test_a_normal_forward_does_not_probe():
    model = create_model("mini_vgg", widths=(8, 16, 24)).train()
    key = (type(model), hash(repr(model)))
    base._min_side_cache.pop(key, None)
    model(torch.zeros(2, 3, 32, 32))
    assert key not in base._min_side_cache
    assert min_input_size(model) == 8 and key in base._min_side_cache
    assert model.training  # probing runs in eval mode and puts the mode back


def test_models_doc_rows():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_models_doc.py"
    spec = importlib.util.spec_from_file_location("gen_models_doc", script)
    gen_models_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_models_doc)
    # LeNet-5 at 1x32x32: conv1 6*28*28*25 + conv2 16*10*10*150 + fc 400*120 + 120*84 + 84*10 = 416,520 MACs.
    assert gen_models_doc.row(model_info("lenet5")).startswith("| `lenet5` | 1998 | 1x32x32 | 61,706 | 417 K |  |")
    assert gen_models_doc.readable(1_814_073_344) == "1.81 G"
    if "resnet18" in list_models():  # torchvision's metadata: 11,689,512 parameters, 1.81 GFLOPS (MACs)
        assert "| 11,689,512 | 1.81 G | `resnet18` |" in gen_models_doc.row(model_info("resnet18"))
