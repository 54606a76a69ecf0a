"""SpeedNet (after airbench, Jordan 2024): parameter counts from the layer arithmetic, output shapes from 8 to 32
pixels, a plain chain of seven convs, the fixed logit scale, and a short run on digits."""

import pytest
import torch
from torch import nn
from twins import images, n_params

from cnnlab import create_model, model_info
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.trainer import run
from cnnlab.models.speednet import SpeedNet

# (stem, block widths) of each builder
LAYOUTS = {"speednet": (32, (64, 128, 256)), "speednet_small": (24, (32, 64, 128))}


def expected_params(stem: int, widths: tuple[int, int, int], in_chans: int, num_classes: int = 10) -> int:
    """Each bias-free 3x3 conv has 9 * c_in * c_out weights, its BatchNorm 2 * c_out; the linear has no bias."""
    conv_bn = lambda c_in, c_out: 9 * c_in * c_out + 2 * c_out  # noqa: E731
    total = conv_bn(in_chans, stem)
    for c_in, c_out in zip((stem, *widths[:-1]), widths):
        total += conv_bn(c_in, c_out) + conv_bn(c_out, c_out)
    return total + widths[-1] * num_classes


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_parameter_count_from_the_layer_arithmetic(name: str, in_chans: int):
    stem, widths = LAYOUTS[name]
    assert n_params(create_model(name, in_chans=in_chans)) == expected_params(stem, widths, in_chans)


def test_parameter_counts_by_value():
    # The arithmetic above, written out once, so a mistake in both the model and the formula still shows.
    assert expected_params(32, (64, 128, 256), 1) == 1_165_920
    assert expected_params(32, (64, 128, 256), 3) == 1_166_496
    assert expected_params(24, (32, 64, 128), 1) == 295_048
    assert expected_params(24, (32, 64, 128), 3) == 295_480


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize(("chans", "side", "final_side"), [(1, 28, 3), (3, 32, 4), (1, 8, 1)])
def test_shapes_at_fashion_mnist_cifar_and_digits_sizes(name: str, chans: int, side: int, final_side: int):
    model = create_model(name, in_chans=chans).eval()
    x = images(side, chans=chans)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    # Three 2x2 max-pools: 28 -> 14 -> 7 -> 3, 32 -> 16 -> 8 -> 4, 8 -> 4 -> 2 -> 1.
    assert features.shape == (2, LAYOUTS[name][1][-1], final_side, final_side)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_each_block_pools_after_its_first_conv():
    model = create_model("speednet", in_chans=1)
    shapes = {}

    def record(key: str):
        def hook(module, inputs, output) -> None:  # returns None: the output is left as it is
            shapes[key] = tuple(output.shape[1:])

        return hook

    hooks = [
        module.register_forward_hook(record(key))
        for key, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(images(28, chans=1))
    for hook in hooks:
        hook.remove()
    assert shapes == {
        "stem.0": (32, 28, 28),
        "block1.0": (64, 28, 28),
        "block1.4": (64, 14, 14),  # the second conv runs after the pool
        "block2.0": (128, 14, 14),
        "block2.4": (128, 7, 7),
        "block3.0": (256, 7, 7),
        "block3.4": (256, 3, 3),
    }


def test_a_plain_chain_without_skips():
    model = create_model("speednet")
    assert sum(isinstance(module, nn.Conv2d) for module in model.modules()) == 7
    assert all(module.bias is None for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear)))
    assert sum(isinstance(module, nn.GELU) for module in model.modules()) == 7
    assert isinstance(model.pool, nn.AdaptiveMaxPool2d)
    # No skip: zeroing the output of block2 leaves block3 nothing to work from, so every image gets the same logits.
    model.eval()
    handle = model.block2.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    with torch.no_grad():
        logits = model(images(32, batch=4))
    handle.remove()
    assert torch.allclose(logits, logits[:1].expand_as(logits))


def test_logits_are_the_linear_head_scaled_by_one_ninth():
    torch.manual_seed(0)
    model = create_model("speednet_small")
    assert model.scale == pytest.approx(1 / 9)
    with torch.no_grad():
        # Training mode: BN normalises with the batch's statistics, so the features are of unit scale (in eval
        # mode a fresh BN is the identity and seven default-initialised convs shrink the logits to ~1e-4).
        features = model.forward_features(images(32, batch=4))
        unscaled = model.get_classifier()(model.forward_head(features, pre_logits=True))
        logits = model.forward_head(features)
    assert unscaled.abs().max() > 0.1
    torch.testing.assert_close(logits, unscaled / 9, rtol=1e-6, atol=0)
    doubled = SpeedNet(widths=(8, 8, 8), stem=8, scale=2.0)
    with torch.no_grad():
        features = doubled.forward_features(images(8, batch=4))
        pooled = doubled.forward_head(features, pre_logits=True)
        torch.testing.assert_close(doubled.forward_head(features), 2 * doubled.fc(pooled), rtol=1e-6, atol=0)


def test_metadata():
    for name in LAYOUTS:
        info = model_info(name)
        assert (info.family, info.year, info.input_size) == ("SpeedNet", 2024, (3, 32, 32))
        assert "arXiv:2404.00498" in info.paper


@pytest.mark.slow  # two epochs on 1,437 digits: about 4 s on one core
@pytest.mark.parametrize("seed", [0, 1])
def test_speednet_small_learns_digits_in_two_epochs(seed: int, tmp_path, digits):
    config = TrainConfig(
        model="speednet_small",
        dataset="digits",
        epochs=2,
        batch_size=64,
        seed=seed,
        precision="fp32",
        out=str(tmp_path / "run"),
    )
    results = run(config, quiet=True, data=digits)
    # Measured 97.2% (seed 0) and 98.6% (seed 1); chance is 10%.
    assert results["test_accuracy"] >= 0.95
    assert results["params"] == 295_048  # built for the data's one channel
