"""--device and --precision: what this machine lacks is a one-line error before anything is written; the
learning-rate rule for another global batch."""

import math

import pytest
import torch
from train_errors import one_line_error

from cnnlab.engine.config import TrainConfig, resolve, scaled_lr
from cnnlab.engine.device import mps_available, resolve_device
from cnnlab.precision import autocast_dtype, check_precision, precision_name


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line(capsys, tmp_path):
    err = one_line_error(capsys, "--device", "cuda", "--out", tmp_path / "run")
    assert "--device cuda: CUDA is not available (" in err
    assert err.rstrip().endswith("use --device cpu, or --device auto for the best device this machine has")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(mps_available(), reason="this machine has MPS")
def test_device_mps_without_mps_is_one_line(capsys, tmp_path):
    err = one_line_error(capsys, "--device", "mps", "--out", tmp_path / "run")
    assert "--device mps: the MPS backend (Apple-silicon GPUs) is not available on this machine" in err


def test_fp16_off_cuda_and_unknown_devices_are_refused(capsys, tmp_path):
    err = one_line_error(capsys, "--precision", "fp16", "--device", "cpu", "--out", tmp_path / "run")
    assert "--precision fp16 needs --device cuda (its gradients need CUDA loss scaling); on cpu use bf16 or fp32" in err
    err = one_line_error(capsys, "--device", "gpu", "--out", tmp_path / "run")
    assert "unknown device 'gpu'; did you mean: cpu?" in err
    assert not (tmp_path / "run").exists()


def test_auto_and_cpu_resolve_to_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    check_precision("bf16", torch.device("cpu"))  # allowed: no error


def test_precision_per_device():
    assert autocast_dtype("fp32", "cuda") is None and autocast_dtype("bf16", "cuda") is torch.bfloat16
    assert autocast_dtype("fp16", "cuda") is torch.float16
    assert autocast_dtype("fp16", "cpu") is None  # a GPU run's config evaluated on a CPU computes in fp32
    assert autocast_dtype("auto", "mps") is None
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["fp32", "bf16", "fp16"]


def test_a_cpu_run_records_its_device(tmp_path):
    import cnnlab

    results = cnnlab.train(
        "lenet5",
        dataset="digits",
        train_subset=600,
        epochs=1,
        threads=1,
        precision="fp32",
        device="cpu",
        out=str(tmp_path / "run"),
        quiet=True,
    )
    assert results["device"] == "cpu" and results["processes"] == 1
    assert not (tmp_path / "run" / "tensorboard").exists()  # TensorBoard logs only on --tensorboard


# ------------------------------------------------------------------------------------ the learning-rate rule
def test_the_default_lr_follows_the_global_batch():
    # digits: AdamW, lr 3e-3 at batch 64 -> square-root rule; fashion-mnist: SGD, lr 0.05 at batch 64 -> linear.
    assert resolve(TrainConfig("lenet5", batch_size=256)).lr == pytest.approx(3e-3 * 2)
    assert resolve(TrainConfig("lenet5", batch_size=16)).lr == pytest.approx(3e-3 / 2)
    assert resolve(TrainConfig("lenet5", dataset="fashion-mnist", batch_size=256)).lr == pytest.approx(0.2)
    assert resolve(TrainConfig("lenet5", dataset="fashion-mnist", batch_size=32)).lr == pytest.approx(0.025)
    assert resolve(TrainConfig("lenet5", dataset="cifar10")).lr == 0.2  # its own batch: unchanged
    assert resolve(TrainConfig("lenet5", batch_size=256, lr=0.01)).lr == 0.01  # a given lr is used as it is
    once = resolve(TrainConfig("lenet5", batch_size=256))
    assert resolve(once).lr == once.lr  # resolving a resolved (saved) config changes nothing
    assert scaled_lr(0.1, 8, "sgd") == pytest.approx(0.8) and scaled_lr(0.1, 8, "adamw") == pytest.approx(
        0.1 * math.sqrt(8)
    )


def test_auto_precision_takes_bf16_only_on_cpus_that_compute_it_natively():
    """torch's mkldnn check says yes on any AVX-512 CPU, where bf16 is emulated and trains slower than fp32."""
    from cnnlab.precision import cpuinfo_has_bf16

    xeon = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bitalg\n"
    zen4 = "flags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512_bf16 avx512_vnni\n"
    sapphire_rapids = "flags\t\t: avx512f avx512bw amx_bf16 amx_tile amx_int8\n"
    graviton3 = "Features\t: fp asimd sve bf16 i8mm\n"
    assert not cpuinfo_has_bf16(xeon)
    assert cpuinfo_has_bf16(zen4) and cpuinfo_has_bf16(sapphire_rapids) and cpuinfo_has_bf16(graviton3)
