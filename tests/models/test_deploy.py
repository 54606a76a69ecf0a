"""Inference and export (cnnlab.deploy): BatchNorm folding over the whole registry, optimize_for_inference (fp32
and bf16), ONNX files of the zoo run with onnxruntime, and `cnnlab export RUN_DIR` with its sidecar JSON.

Every model runs with randomised BN statistics and affine terms (twins.randomize_norms_): at init an eval-mode BN
is the identity, and folding it would prove nothing. For time (the file took 100 s on two cores with the whole
zoo): folding runs over every registered model with BatchNorm and the ONNX test over every registered model, both
without the big variants in `make test` (tests/zoo_sample.py: their siblings run the same code), at small_input and
the model's smallest side of at least 16 pixels (alexnet_paper goes through the torch.export-based exporter, the
others through the TorchScript-based one). Both compare to atol 1e-4 on logits divided by their largest magnitude
(deep CIFAR ResNets with random statistics grow their logits with depth: resnet1202 reaches ~1e11 even at BN gains
of at most 0.5; the folding test divides only scales above 1).
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn
from twins import MIN_LOGITS_STD, randomize_norms_
from zoo_sample import zoo_loop

import cnnlab
from cnnlab.cli import main
from cnnlab.data import normalize
from cnnlab.deploy import FORMATS, export_bytes, fold_batchnorm, foldable_pairs, optimize_for_inference
from cnnlab.errors import CnnlabError
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, list_models, min_input_size, model_info

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'cnnlab[export]')")

ATOL = 1e-4
# A pre-activation BN (BN -> ReLU -> conv) has no conv before it, so it stays: DenseNet keeps norm1 of every
# layer, each transition's norm and norm5; the pre-activation ResNets keep every block's BNs but the one
# after their first conv. SpeedNet pools between each block's first conv and its BN (conv -> max-pool -> BN), so
# those three stay. Every other model folds all of its BNs.
UNFOLDABLE = {
    "densenet121": 62,
    "densenet169": 86,
    "densenet201": 102,
    "densenet_bc_100_12": 51,
    "preact_resnet18": 9,
    "speednet": 3,
    "speednet_small": 3,
    "wrn28_10": 13,
    "wrn40_4": 19,
}


def small_kwargs(name: str) -> dict:
    """small_input=True for the ImageNet-sized models (all of whose builders take it)."""
    return {"small_input": True} if model_info(name).input_size[1] >= 64 else {}


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def with_batchnorm() -> list[str]:
    names = []
    for name in list_models():
        with on_meta():
            if count_bn(create_model(name, **small_kwargs(name))):
                names.append(name)
    return names


def random_model(name: str) -> nn.Module:
    """`name` in eval mode with randomised norms and unit-gain linears; a model without BN also gets He-normal
    convs (NiN and AlexNet at 16 pixels init so small that their logits barely vary: std 0.01-0.02)."""
    torch.manual_seed(0)
    model = create_model(name, **small_kwargs(name)).eval()
    randomize_norms_(model, linear=True, max_gain=0.5)
    if not count_bn(model):
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model


def batch(model: nn.Module, batch: int = 2, seed: int = 1) -> torch.Tensor:
    side = max(min_input_size(model), 16)
    return torch.randn(batch, model.in_chans, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", zoo_loop(with_batchnorm()))
def test_folding_keeps_the_outputs_of_every_model_with_batchnorm(name: str):
    model = random_model(name)
    x = batch(model)
    bn_before = count_bn(model)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        actual = model(x)
    assert folded == bn_before - UNFOLDABLE.get(name, 0)
    assert count_bn(model) == UNFOLDABLE.get(name, 0)
    # SpeedNet multiplies its logits by a fixed 1/9 (a softmax temperature): the bar scales with it
    assert torch.isfinite(expected).all() and expected.std() > MIN_LOGITS_STD * getattr(model, "scale", 1.0)
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual / scale, expected / scale, atol=ATOL, rtol=0)
    assert torch.equal(actual.argmax(1), expected.argmax(1))


class PreActivation(nn.Module):
    """bn1 before conv1 (named like a conv -> BN pair, but not one), then a conv whose output feeds a BN and
    the residual sum, then a BN called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.conv3, self.conv4, self.shared = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.conv5, self.bn5 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        branch = self.conv2(out)
        out = self.bn2(branch) + branch  # conv2's output has a second reader
        out = self.shared(self.conv3(out)) + self.shared(self.conv4(out))
        return self.bn5(self.conv5(out))  # the one foldable pair


def test_pairs_come_from_the_graph_not_the_names():
    model = PreActivation().eval()
    randomize_norms_(model)
    assert foldable_pairs(model) == [("conv5", "bn5")]
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        assert fold_batchnorm(model) == 1
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)
    assert isinstance(model.bn5, nn.Identity) and model.conv5.bias is not None
    assert all(isinstance(getattr(model, name), nn.BatchNorm2d) for name in ("bn1", "bn2", "shared"))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) if x.sum() > 0 else x


def test_an_untraceable_forward_is_a_one_line_error():
    with pytest.raises(CnnlabError, match=r"^cannot fold BatchNorm in Branchy: torch.fx cannot trace its forward \("):
        fold_batchnorm(Branchy())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """simple_resnet (7 BNs, all foldable) trained for one epoch on 600 digits: real, non-random statistics."""
    out = tmp_path_factory.mktemp("export") / "run"
    cnnlab.train("simple_resnet", "digits", epochs=1, train_subset=600, threads=1, out=str(out), quiet=True)
    return out


@pytest.fixture(scope="module")
def fixed_batch(trained_run, digits):
    from cnnlab.inference.prediction import load_run

    run = load_run(trained_run)
    return run.model, normalize(digits.test_images, run.data["mean"], run.data["std"])  # [360, 1, 28, 28]


def test_optimized_fp32_keeps_top1_and_logits(fixed_batch):
    model, x = fixed_batch
    optimized = optimize_for_inference(model, precision="fp32")
    assert optimized.folded_batchnorms == 7 and count_bn(optimized) == 0 and count_bn(model) == 7  # a copy
    assert optimized.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, actual = model(x), optimized(x)
    assert actual.dtype == torch.float32 and x.is_contiguous()
    max_diff = (actual - expected).abs().max().item()
    assert max_diff < 1e-5, f"fp32 folded + channels_last: max |logit difference| {max_diff:.2e}"
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def test_optimized_bf16_keeps_top1_where_the_margin_allows(fixed_batch):
    model, x = fixed_batch
    optimized = optimize_for_inference(model, precision="bf16")
    assert optimized.dtype == torch.bfloat16 and next(optimized.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        expected, actual = model(x), optimized(x)
    assert actual.dtype == torch.float32
    max_diff = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert max_diff < 0.05 * scale, f"bf16: max |logit difference| {max_diff:.3f} for logits up to {scale:.1f}"
    # bf16 may swap the top two classes only where fp32 has them within twice the worst logit error.
    top2 = expected.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 2 * max_diff
    assert decided.sum() > 0.9 * len(x)
    assert torch.equal(actual.argmax(1)[decided], expected.argmax(1)[decided])
    assert (actual.argmax(1) == expected.argmax(1)).float().mean() > 0.99


def test_optimize_refuses_an_unknown_precision():
    with pytest.raises(CnnlabError, match=r"^unknown precision 'fp8'"):
        optimize_for_inference(nn.Conv2d(1, 1, 1), precision="fp8")


def onnx_logits(payload: bytes, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(output), session.get_inputs()[0].shape


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_loop(list_models()))
def test_onnx_export_of_the_zoo_matches_pytorch(name: str):
    model = random_model(name)
    payload = export_bytes(model, batch(model, batch=2), "onnx")
    x = batch(model, batch=3, seed=2)  # another batch size than the traced one: the batch axis is dynamic
    actual, input_shape = onnx_logits(payload, x)
    with torch.no_grad():
        expected = model(x)
    assert input_shape == ["batch", model.in_chans, x.shape[2], x.shape[3]]
    # Compared on the logits' own scale: resnet1202's reach ~1e11 with random statistics, vgg19's (no BN) ~1e-2.
    scale = expected.abs().max().item()
    assert torch.isfinite(expected).all() and expected.std() > MIN_LOGITS_STD * scale
    torch.testing.assert_close(actual / scale, expected / scale, atol=ATOL, rtol=0)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("optimize", [False, True])
def test_cli_export_writes_the_model_and_its_sidecar(format, optimize, trained_run, fixed_batch, tmp_path, capsys):
    model, x = fixed_batch
    out = tmp_path / f"exported-{format}"
    assert (
        main(["export", str(trained_run), "--format", format, "--out", str(out), *(["--optimize"] if optimize else [])])
        == 0
    )
    assert f"wrote {out} ({format}, dynamic batch" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / f"{out.name}.json").read_text())
    config = json.loads((trained_run / "config.json").read_text())
    assert sidecar["classes"] == config["data"]["classes"] == [str(i) for i in range(10)]
    assert sidecar["input_size"] == [1, 28, 28]
    assert (sidecar["mean"], sidecar["std"]) == (config["data"]["mean"], config["data"]["std"])
    assert (sidecar["format"], sidecar["optimized"], sidecar["folded_batchnorms"]) == (
        format,
        optimize,
        7 if optimize else 0,
    )
    x = x[:50]
    with torch.no_grad():
        expected = model(x)  # the eager, unfolded model
        if format == "onnx":
            actual, _ = onnx_logits(out.read_bytes(), x)
        else:
            loaded = torch.jit.load(str(out))
            actual = loaded(x)
            assert loaded(x[:3]).shape == (3, 10)  # traced on 2 images, runs on any batch
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def test_export_default_paths(trained_run):
    result = cnnlab.export(trained_run, "torchscript")
    assert result["path"] == str(trained_run / FORMATS["torchscript"]) == str(trained_run / "model.torchscript.pt")
    assert result["sidecar"] == str(trained_run / "model.torchscript.pt.json")
    assert json.loads((trained_run / "model.torchscript.pt.json").read_text())["file"] == "model.torchscript.pt"


def test_export_errors_are_one_line(trained_run, tmp_path, capsys, monkeypatch):
    assert main(["export", str(trained_run), "--format", "onx"]) == 2
    assert capsys.readouterr().err.strip() == "cnnlab: error: unknown export format 'onx'; did you mean: onnx?"
    assert main(["export", str(tmp_path / "nowhere"), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == f"cnnlab: error: run directory {tmp_path / 'nowhere'} does not exist"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", str(trained_run), "--format", "torchscript", "--out", str(blocker / "model.pt")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"cnnlab: error: could not write {blocker / 'model.pt'}: {blocker} is a file, not a directory"
    )
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the export extra were not installed
    with pytest.raises(
        CnnlabError, match=r"^ONNX export needs the onnx and onnxscript packages: pip install 'cnnlab\[export\]'$"
    ):
        export_bytes(nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 2, 2), "onnx")


def test_int8_keeps_nearly_every_top1_of_a_trained_model(fixed_batch):
    from cnnlab.deploy import quantize_int8

    model, x = fixed_batch  # simple_resnet trained on digits; x: the 360 test digits
    quantized = quantize_int8(model, x[:200])
    with torch.no_grad():
        expected, actual = model(x), quantized(x)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    assert any(
        type(module).__module__.startswith("torch.ao.nn.quantized") for module in quantized.modules()
    )  # int8 convs
    agreement = (actual.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agreement >= 0.97, f"int8 agrees with fp32 on {agreement:.1%} of the test digits"
    assert (actual - expected).abs().max() < 0.1 * expected.abs().max()


def test_int8_errors_are_one_line():
    from cnnlab.deploy import quantize_int8

    with pytest.raises(
        CnnlabError,
        match=r"^int8 calibration needs normalised float images \[N, C, H, W\], got \(4, 1, 8\) torch.uint8$",
    ):
        quantize_int8(nn.Conv2d(1, 1, 1), torch.zeros(4, 1, 8, dtype=torch.uint8))
    with pytest.raises(CnnlabError, match=r"^cannot quantize Branchy: torch.fx cannot trace its forward \("):
        quantize_int8(Branchy(), torch.randn(2, 3, 4, 4))
