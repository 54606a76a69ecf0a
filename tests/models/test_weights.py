"""create_model(name, weights=PATH): torchvision checkpoints load into their cnnlab twins with equal logits,
the stem and head adapt to other channel and class counts, and bad files fail cleanly (no code run, no
partial load). The twin loop covers every registered model with `twin` set, as families land.
"""

from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from twins import n_params

from cnnlab.errors import CnnlabError
from cnnlab.models.meta import on_meta
from cnnlab.models.weights import adapt_input_conv, load_weights
from cnnlab.registry import create_model, list_models, min_input_size, model_info

TWINNED = [name for name in list_models() if model_info(name).twin]
LOGITS_LIMIT = 200_000_000  # every twin, the 138M-parameter VGGs included, goes through a real checkpoint file
SAFETENSORS_TOO = {"resnet18", "mobilenet_v3_small"}  # also saved and loaded as .safetensors
# GoogLeNet: the inference network (no auxiliary heads: 6,624,904 parameters, as torchvision builds it when
# it loads weights); init_weights=False skips a FutureWarning and scipy's slow truncnorm init.
TWIN_KWARGS = {"googlenet": {"init_weights": False, "aux_logits": False}}


def build_twin(name: str, device: str = "cpu") -> torch.nn.Module:
    twin = model_info(name).twin
    with torch.device(device), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torchvision.models.get_model(twin, weights=None, **TWIN_KWARGS.get(twin, {}))


def images(name: str, in_chans: int = 3, batch: int = 2) -> torch.Tensor:
    side = max(min_input_size(name), 64)
    torch.manual_seed(1)
    return torch.randn(batch, in_chans, side, side)


@pytest.mark.parametrize("name", TWINNED)
def test_twin_state_dict_fits(name: str):
    """Every twin's state dict, through adapt_state_dict, has exactly our keys and shapes (on the meta device,
    except for torchvision builders that need real numbers, e.g. RegNet's width rounding)."""
    try:
        twin = build_twin(name, "meta")
    except NotImplementedError:
        twin = build_twin(name)
    with on_meta():
        ours = create_model(name)
    theirs = {key: tuple(value.shape) for key, value in ours.adapt_state_dict(twin.state_dict()).items()}
    assert theirs == {key: tuple(value.shape) for key, value in ours.state_dict().items()}
    assert n_params(ours) == n_params(twin)


@pytest.mark.parametrize("name", TWINNED)
def test_twin_checkpoint_gives_equal_logits(name: str, tmp_path):
    with on_meta():
        size = n_params(create_model(name))
    if size > LOGITS_LIMIT:
        pytest.skip(f"{name}: {size:,} parameters; keys, shapes and count checked on meta")
    twin = build_twin(name).eval()
    x = images(name)
    path = tmp_path / f"{name}.pth"
    torch.save(twin.state_dict(), path)
    try:
        ours = create_model(name, weights=path).eval()
    finally:
        path.unlink()  # pytest keeps old tmp dirs: do not leave gigabytes of checkpoints behind
    assert n_params(ours) == n_params(twin)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), twin(x), atol=1e-4, rtol=0)
    if name in SAFETENSORS_TOO:
        path = tmp_path / f"{name}.safetensors"
        save_file(twin.state_dict(), path)
        from_safetensors = create_model(name, weights=path).eval()
        with torch.no_grad():
            torch.testing.assert_close(from_safetensors(x), twin(x), atol=1e-4, rtol=0)


@pytest.mark.skipif("googlenet_tv" not in TWINNED, reason="googlenet_tv not registered")
def test_googlenet_checkpoint_with_auxiliary_heads(tmp_path):
    # torchvision's published GoogLeNet file holds the auxiliary heads (torchvision loads it with them, then
    # deletes them), so the default, head-free googlenet_tv must accept and ignore those keys.
    twin = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(twin.state_dict(), path)
    ours = create_model("googlenet_tv", weights=path).eval()
    x = images("googlenet_tv")
    with torch.no_grad():
        torch.testing.assert_close(ours(x), twin(x), atol=1e-4, rtol=0)


# The remaining tests use resnet18 (torchvision's) and mini_vgg (a cnnlab checkpoint, no twin) as examples.


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    twin = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(twin.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet18_loaded(resnet18_file):
    return create_model("resnet18", weights=resnet18_file).eval()


@pytest.mark.parametrize("container", ["state_dict", "model"])
def test_wrapped_state_dict(container: str, resnet18_file, resnet18_loaded, tmp_path):
    # Training scripts save {"model": ..., "optimizer": ..., "epoch": ...}; Lightning-style ones {"state_dict": ...}.
    path = tmp_path / "wrapped.pt"
    torch.save({container: torch.load(resnet18_file, weights_only=True), "epoch": 3, "note": "x"}, path)
    model = create_model("resnet18", weights=path).eval()
    x = images("resnet18")
    with torch.no_grad():
        assert torch.equal(model(x), resnet18_loaded(x))


def test_one_channel_stem_sums_the_filters(resnet18_file, resnet18_loaded):
    grey = create_model("resnet18", in_chans=1, weights=resnet18_file).eval()
    assert grey.conv1.weight.shape == (64, 1, 7, 7)
    x = images("resnet18", in_chans=1)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), resnet18_loaded(x.expand(-1, 3, -1, -1)), atol=1e-4, rtol=0)


def test_six_channel_stem_repeats_and_rescales(tmp_path):
    # mini_vgg's own checkpoint: the stem conv is block1.0.0 and has a bias, which must stay as it is.
    torch.manual_seed(0)
    rgb = create_model("mini_vgg").eval()
    path = tmp_path / "mini_vgg.safetensors"
    save_file(rgb.state_dict(), path)
    six = create_model("mini_vgg", in_chans=6, weights=path).eval()
    stem, stored = six.block1[0][0], rgb.block1[0][0]
    assert torch.equal(stem.weight, torch.cat([stored.weight, stored.weight], 1) / 2)
    assert torch.equal(stem.bias, stored.bias)
    x = images("mini_vgg")
    with torch.no_grad():  # [x, x] through the adapted filters is x through the original ones
        torch.testing.assert_close(six(torch.cat([x, x], 1)), rgb(x), atol=1e-5, rtol=1e-5)


def test_adapt_input_conv_values():
    weight = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)  # [[0, 1, 2], [3, 4, 5]]
    assert adapt_input_conv(weight, 1).flatten().tolist() == [3.0, 12.0]
    assert adapt_input_conv(weight, 2).flatten().tolist() == [0.0, 1.5, 4.5, 6.0]  # x 3/2
    assert adapt_input_conv(weight, 4).flatten().tolist() == [0.0, 0.75, 1.5, 0.0, 2.25, 3.0, 3.75, 2.25]


def test_other_class_count_keeps_a_fresh_head(resnet18_file, resnet18_loaded):
    with pytest.warns(UserWarning, match=r"1000 classes.*10.*fc\.weight, fc\.bias"):
        model = create_model("resnet18", num_classes=10, weights=resnet18_file).eval()
    assert model.fc.weight.shape == (10, 512)
    x = images("resnet18")
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        assert torch.equal(features, resnet18_loaded.forward_head(resnet18_loaded.forward_features(x), pre_logits=True))


def test_the_head_warning_is_typed_and_carries_both_class_counts(resnet18_file):
    from cnnlab.errors import HeadMismatchWarning

    with pytest.warns(HeadMismatchWarning) as caught:
        create_model("resnet18", num_classes=10, weights=resnet18_file)
    warning = caught[0].message
    assert (warning.checkpoint_classes, warning.model_classes, warning.keys) == (1000, 10, ["fc.weight", "fc.bias"])
    assert warning.path == str(resnet18_file)


def test_same_class_count_does_not_warn(resnet18_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_model("resnet18", weights=resnet18_file)


class _RunsCode:
    def __init__(self, payload: tuple) -> None:
        self.payload = payload

    def __reduce__(self):
        return self.payload


@pytest.mark.parametrize("payload", ["os.system", "open"])
@pytest.mark.parametrize("container", ["torch.save", "pickle"])
def test_pickled_code_is_refused(payload: str, container: str, tmp_path):
    marker = tmp_path / "pwned"
    action = (os.system, (f"touch {marker}",)) if payload == "os.system" else (open, (str(marker), "w"))
    path = tmp_path / "evil.pth"
    checkpoint = {"fc.weight": torch.zeros(2, 2), "evil": _RunsCode(action)}
    if container == "torch.save":
        torch.save(checkpoint, path)
    else:
        with open(path, "wb") as file:
            pickle.dump(checkpoint, file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch notes the pickle protocol of the plain-pickle file
        with pytest.raises(
            CnnlabError,
            match=r"evil\.pth holds pickled code( \((posix\.system|io\.open)\))?, which cnnlab refuses .*safetensors",
        ):
            create_model("resnet18", weights=path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file_names_the_file(suffix: str, tmp_path):
    state_dict = create_model("mini_vgg").state_dict()
    whole = tmp_path / f"whole{suffix}"
    save_file(state_dict, whole) if suffix == ".safetensors" else torch.save(state_dict, whole)
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CnnlabError, match=rf"weights file .*broken\{suffix} is truncated or corrupted"):
        create_model("mini_vgg", weights=broken)


def test_wrong_architecture_is_refused_and_nothing_is_loaded(resnet18_file):
    torch.manual_seed(0)
    model = create_model("resnet34")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CnnlabError, match=r"resnet18\.pth does not fit resnet34: missing: layer1\.2\.conv1\.weight"):
        load_weights(model, resnet18_file)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_shape_mismatch_names_the_key(tmp_path):
    path = tmp_path / "wide.safetensors"
    save_file(create_model("mini_vgg", widths=(32, 64, 256)).state_dict(), path)
    with pytest.raises(
        CnnlabError,
        match=r"does not fit mini_vgg: .*shape mismatch \(file vs model\): "
        r"block3\.0\.0\.weight \[256, 64, 3, 3\] vs \[128, 64, 3, 3\]",
    ):
        create_model("mini_vgg", weights=path)


def test_missing_file_and_foreign_content(tmp_path):
    with pytest.raises(CnnlabError, match=r"weights file .*nowhere\.pth does not exist"):
        create_model("mini_vgg", weights=tmp_path / "nowhere.pth")
    path = tmp_path / "numbers.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CnnlabError, match=r"numbers\.pt does not hold a state dict of named tensors"):
        create_model("mini_vgg", weights=path)


def test_error_messages_are_one_line(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(CnnlabError) as error:
        create_model("mini_vgg", weights=broken)
    assert "\n" not in str(error.value) and "broken.pth" in str(error.value)
