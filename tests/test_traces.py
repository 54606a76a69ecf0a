"""`cnnlab trace`: the tutorials' traces recomputed, scratch against torch.nn, as a table and as JSON."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cnnlab import CnnlabError
from cnnlab.cli import main
from cnnlab.traces import list_traces, trace
from cnnlab.traces.batchnorm import seeded_batch


def rows_by_quantity(result: dict) -> dict[str, list]:
    return {row[1]: row for row in result["rows"]}


def assert_sides_agree(result: dict, tolerance: float = 1e-5) -> None:
    diffs = [row[-1] for row in result["rows"] if row[-1] is not None]
    assert diffs and max(diffs) <= tolerance


def test_every_trace_is_json_data_with_one_cell_per_column():
    assert list_traces() == ["batchnorm", "bottleneck", "conv", "residual", "running_stats"]
    for name in list_traces():
        result = trace(name)
        assert json.loads(json.dumps(result)) == result
        assert set(result) == {"name", "title", "columns", "rows", "notes", "data", "options"}
        assert all(len(row) == len(result["columns"]) for row in result["rows"]) and result["notes"]


def test_batchnorm_on_the_tutorial_tensor():
    result = trace("batchnorm")
    rows = rows_by_quantity(result)
    assert rows["batch mean mu_B per channel"][2:4] == [[4.5, 13.5], [4.5, 13.5]]
    assert rows["batch variance sigma^2_B (/N: normalises)"][2] == [5.25, 5.25]
    assert rows["unbiased variance (/(N-1): feeds running_var)"][3] == [6.0, 6.0]
    x_hat = (np.arange(1, 9) - 4.5) / np.sqrt(5.25 + 1e-5)
    np.testing.assert_allclose(rows["x_hat, channel 0: (x - mu_B) / sqrt(sigma^2_B + eps)"][3], x_hat, atol=1e-6)
    # One step at momentum 0.1 from (0, 1): mean 0.1 * [4.5, 13.5]; var 0.9 + 0.1 * 6.0 (errata E08), not 1.425.
    np.testing.assert_allclose(rows["running_mean after batch 0"][3], [0.45, 1.35], atol=1e-6)
    np.testing.assert_allclose(rows["running_var after batch 0"][3], [1.5, 1.5], atol=1e-6)
    eval_row = next(row for name, row in rows.items() if name.startswith("eval-mode y, channel 0"))
    np.testing.assert_allclose(eval_row[3][:4], (np.arange(1, 5) - 0.45) / np.sqrt(1.5 + 1e-5), atol=1e-5)
    assert [round(v, 2) for v in eval_row[3][:4]] == [0.45, 1.27, 2.08, 2.9]  # the tutorial prints 0.46, 1.30, ...
    assert_sides_agree(result)


def test_batchnorm_running_statistics_follow_the_seeded_batches():
    result = trace("batchnorm", batch=3, momentum=0.2)
    rows = rows_by_quantity(result)
    mean, var = np.zeros(2), np.ones(2)
    for k in range(4):
        x = seeded_batch(k).astype(np.float64)
        mean = 0.8 * mean + 0.2 * x.mean(axis=(0, 2, 3))
        var = 0.8 * var + 0.2 * x.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(rows[f"running_mean after batch {k}"][3], mean, atol=1e-4)
        np.testing.assert_allclose(rows[f"running_var after batch {k}"][2], var, atol=1e-4)
    np.testing.assert_array_equal(seeded_batch(2), seeded_batch(2))  # seeded: the same batch every time
    means = [seeded_batch(k).mean() for k in range(4)]
    assert len({round(m, 3) for m in means}) == 4  # each batch its own mean, like the widget's batches
    assert rows["train-mode mean of y per channel"][3] == pytest.approx([0, 0], abs=1e-6)
    assert_sides_agree(result)


def test_residual_slider_at_two():
    result = trace("residual", x=2.0)
    values = [row[3] for row in result["rows"]]  # the torch column, in step order
    # x, z, ReLU(z), F(x), identity, F(x) + x, H, P, dF/dx, dH/dx, dP/dx, 10 residual blocks, 10 plain blocks
    assert values[:11] == pytest.approx([2.0, 1.5, 1.5, 1.1, 2.0, 3.1, 3.1, 1.1, 1.0, 2.0, 1.0])
    # the residual chain doubles the gradient per block; the plain one dies in its third block (input 0.2, z < 0)
    assert values[11] == pytest.approx(2.0**10) and values[12] == 0.0
    assert_sides_agree(result)
    dead = trace("residual", x=-3.0, weights="0.5,0.1,1.0,0.0")
    # z < 0: the conv path is off, F = 0, and F(x) + x = -3 < 0: the final ReLU stops the skip's gradient too.
    assert [row[3] for row in dead["rows"]][8:11] == [0.0, 0.0, 0.0]
    slope = trace("residual", x=1.0, weights="-2,1,0.25,0")  # dF/dx = 0.25 * -2 = -0.5, F(1) = 0
    assert [row[2] for row in slope["rows"]][8:11] == pytest.approx([0.0, 1.0, 0.0])  # z = -1 < 0
    data = result["data"]
    assert len(data["x"]) == len(data["dH"]) == 61 and data["dH"][data["x"].index(2.0)] == pytest.approx(2.0)


def test_residual_sweep_separates_the_three_blocks():
    """The widget's chart: F, H and P are three different curves (F >= 0 everywhere would make P = ReLU(F) = F)."""
    data = trace("residual")["data"]
    at = {x: i for i, x in enumerate(data["x"])}
    # x = -1: F = ReLU(-1.5) - 0.4 = -0.4, P = ReLU(F) = 0, H = ReLU(-0.4 - 1) = 0
    assert [data[k][at[-1.0]] for k in ("f", "plain", "h")] == pytest.approx([-0.4, 0.0, 0.0])
    # x = 0.7: F = 0.2 - 0.4 = -0.2, P = 0, H = ReLU(-0.2 + 0.7) = 0.5
    assert [data[k][at[0.7]] for k in ("f", "plain", "h")] == pytest.approx([-0.2, 0.0, 0.5])
    assert [data[k][at[0.7]] for k in ("dF", "dP", "dH")] == [1.0, 0.0, 2.0]
    assert sum(f != p for f, p in zip(data["f"], data["plain"])) == 39  # x = -3.0 ... 0.8, where F < 0
    assert all(h != p for h, p in zip(data["h"], data["plain"]) if h > 0)


def test_bottleneck_against_two_3x3_convs():
    result = trace("bottleneck", channels=256)
    convs = [row for row in result["rows"] if row[1].startswith("conv")]
    assert [row[5] for row in convs] == [16_384, 36_864, 16_384, 589_824, 589_824]
    assert all(row[5] == row[6] and row[7] == row[8] for row in convs)  # formula == torch, params and MACs
    assert convs[0][3] == "256x56x56 -> 64x56x56" and convs[1][7] == 3 * 3 * 64 * 64 * 56 * 56
    totals = [row for row in result["rows"] if row[1] == "block total"]
    assert [row[6] for row in totals] == [70_400, 1_180_672]  # with BatchNorm; docs/errata.md C13
    # 64 channels, 16 inside: convs 64*16 + 9*16*16 + 16*64 = 4,352, BN 2*16 + 2*16 + 2*64 = 192
    assert trace("bottleneck", channels=64, size=8)["data"]["bottleneck_params"] == 4_352 + 192


def test_conv_sliding_window_matches_torch_and_the_formula():
    result = trace("conv", input="5x5", kernel=3, stride=1, padding=0)
    size_row, *windows = result["rows"]
    assert size_row[4] == size_row[5] == [3, 3] and "floor((5 + 2*0 - 3) / 1) + 1" in size_row[3]
    image, kernel = np.array(result["data"]["input"]), np.array(result["data"]["kernel"])
    assert image.shape == (5, 5) and kernel.shape == (3, 3) and len(windows) == 9
    for row in windows:
        i, j = (int(v) for v in row[0].strip("()").split(", "))
        assert row[4] == row[5] == float((image[i : i + 3, j : j + 3] * kernel).sum())
    strided = trace("conv", input="6x7", kernel=3, stride=2, padding=1)
    assert strided["rows"][0][4] == [3, 4] and len(strided["rows"]) == 1 + 12
    assert_sides_agree(strided)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "batchnrm",
            {},
            "unknown trace 'batchnrm'; did you mean batchnorm? the traces are: batchnorm, bottleneck, conv, residual",
        ),
        ("conv", {"input": "5y5"}, "--input takes HxW or a side"),
        ("conv", {"input": "3x3", "kernel": 5}, "does not fit"),
        ("conv", {"x": 2.0}, "trace conv has no option 'x'"),
        ("residual", {"weights": "1,2"}, "--weights takes four numbers"),
        ("batchnorm", {"batch": 99}, "--batch must be 0"),
        ("bottleneck", {"channels": 30}, "multiple of 4"),
        ("conv", {"padding": 10**6, "kernel": 10**6}, "--kernel must be 1 to 32, got 1000000"),  # once: terabytes
        ("conv", {"padding": 10**6}, "--padding must be 0 to 32, got 1000000"),
        ("residual", {"depth": 5000}, "--depth must be 1 to 1000, got 5000"),
    ],
)
def test_bad_options_are_errors(name, options, message):
    with pytest.raises(CnnlabError, match=re.escape(message)):
        trace(name, **options)


def test_cli_table_json_and_one_line_errors(capsys):
    assert main(["trace", "conv", "--input", "4x4"]) == 0
    out = capsys.readouterr().out
    assert "(1, 1)" in out and "-> 2x2" in out and "floor(" in out
    assert main(["trace", "residual", "--x", "2.0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "residual" and data["options"]["x"] == 2.0 and data["rows"][5][3] == pytest.approx(3.1)
    for argv, message in [
        (["trace", "nope"], "unknown trace 'nope'; the traces are: batchnorm, bottleneck, conv, residual"),
        (["trace", "conv", "--input", "5y5"], "--input takes HxW"),
        (["trace", "conv", "--x", "2"], "--x does not apply to trace conv; its options: --input, --kernel"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_running_statistics_on_real_batches_follow_the_ema_to_the_dataset_statistic():
    """[05] Running Statistics on digits: each running mean is (1 - a) m + a b of the recorded batch means, and
    after 100 batches it sits near the dataset's own statistic of the same conv output."""
    import torch

    from cnnlab.data import load_dataset, normalize
    from cnnlab.registry import create_model

    result = trace("running_stats", model="lenet5", dataset="digits", batches=100, momentum=0.1, batch_size=64)
    data = result["data"]
    batch_means, running = torch.tensor(data["batch_mean"]), torch.tensor(data["running_mean"])
    expected = torch.zeros(batch_means.shape[1])
    for t in range(100):
        expected = 0.9 * expected + 0.1 * batch_means[t]
        torch.testing.assert_close(running[t], expected, atol=2e-6, rtol=0)
    digits = load_dataset("digits")
    torch.manual_seed(0)
    conv = create_model("lenet5", in_chans=1, num_classes=10, input_size=28).conv1
    with torch.no_grad():
        true_mean = conv(normalize(digits.train_images, digits.mean, digits.std)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(torch.tensor(data["dataset_mean"]), true_mean, atol=2e-6, rtol=0)
    gap = (running - true_mean).abs().max(dim=1).values
    assert gap[-1] < 0.01 < gap[0]  # settled: from about a batch mean's size to a hundredth of it
    torch.testing.assert_close(torch.tensor(data["mean_gap"]), gap, atol=2e-6, rtol=0)
    with torch.no_grad():
        true_var = conv(normalize(digits.train_images, digits.mean, digits.std)).var(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(torch.tensor(data["dataset_var"]), true_var, atol=2e-5, rtol=0)
    var_gap = (torch.tensor(data["running_var"]) - true_var).abs().max(dim=1).values
    # measured: 0.0019 (mean) and 0.0020 (variance) after 100 batches, from 0.25 and 0.83 after the first
    assert var_gap[-1] < 0.01 < 0.5 < var_gap[0]
    assert [row[0] for row in result["rows"]] == [t for t in (1, 25, 50, 75, 100) for _ in range(3)]
    with pytest.raises(CnnlabError, match="--batches must be 1 to 100"):
        trace("running_stats", batches=500)


def test_running_statistics_at_momentum_one_are_the_last_batchs():
    """Momentum 1.0 forgets everything before the current batch: the running mean is that batch's mean and the
    running variance its unbiased variance (PyTorch's buffer, errata E15)."""
    import torch

    data = trace("running_stats", dataset="digits", batches=5, momentum=1.0, batch_size=32)["data"]
    torch.testing.assert_close(torch.tensor(data["running_mean"]), torch.tensor(data["batch_mean"]), atol=2e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(data["running_var"]), torch.tensor(data["batch_var"]), atol=2e-6, rtol=0)
    assert len(data["batch"]) == 5 and len(data["mean_gap"]) == 5


def test_trace_plot_writes_the_running_statistics_png_and_only_for_that_trace(tmp_path, capsys):
    png = tmp_path / "running.png"
    assert main(["trace", "running_stats", "--batches", "10", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in capsys.readouterr().out
    for argv, message in [
        (["trace", "residual", "--plot", str(png)], "--plot draws trace running_stats only, not residual"),
        (["trace", "running_stats", "--plot", str(tmp_path / "no" / "x.png")], "its folder does not exist"),
        (["trace", "running_stats", "--dataset", "imagefolder:/etc"], "--dataset must be a built-in dataset"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
