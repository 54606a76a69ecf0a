"""Bad input and a hostile environment: one clear line, exit code 2, no traceback, nothing lost. (Names, numbers,
data files and predict inputs are covered in tests/test_cli.py and tests/data; docs/errors.md lists every case.)"""

from __future__ import annotations

import errno
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from trust_helpers import assert_one_line_error, run_cli

from cnnlab import checkpoint
from cnnlab.checkpoint import STATE_SHA256, read_state, read_weights_and_metadata

SMALL = ["--dataset", "digits", "--train-subset", "400", "--epochs", "1", "--threads", "1", "--quiet"]  # 5 steps of 64


@pytest.mark.parametrize("failing_file", ["step-00000004.safetensors", "step-00000004.state.pt", "latest"])
def test_full_disk_while_saving_keeps_the_previous_checkpoint(capsys, tmp_path, monkeypatch, failing_file):
    real_atomic_write = checkpoint.atomic_write
    writes_of_latest = []

    def atomic_write(path, write):
        if path.name == "latest":
            writes_of_latest.append(path)
        if path.name == failing_file and (failing_file != "latest" or len(writes_of_latest) == 2):

            def half_then_enospc(handle):
                handle.write(b"\0" * 1000)  # some bytes reach the temp file before the disk fills up
                raise OSError(errno.ENOSPC, "No space left on device")

            return real_atomic_write(path, half_then_enospc)
        return real_atomic_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", atomic_write)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "lenet5", *SMALL, "--checkpoint-every", "2", "--out", out)
    written = out / "checkpoints" / failing_file
    assert_one_line_error(
        code,
        err,
        f"saving the checkpoint of step 4 failed: could not write {written}: No space left "
        f"on device; the earlier checkpoints in {out / 'checkpoints'} are intact; resume with: "
        f"cnnlab train lenet5 --resume {out}",
    )
    folder = out / "checkpoints"
    assert (folder / "latest").read_text() == "step-00000002"
    assert not list(folder.glob(".*"))  # the temp file went with the error
    tensors, metadata = read_weights_and_metadata(folder / "step-00000002.safetensors")
    assert read_state(folder / "step-00000002.state.pt", metadata[STATE_SHA256])["step_in_epoch"] == 2
    monkeypatch.setattr(checkpoint, "atomic_write", real_atomic_write)  # space freed
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", out, "--quiet")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["status"] == "completed"


def test_out_that_cannot_be_written_is_refused(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # (Tests run as root here, so a chmod'ed folder would still be writable; a file in the path never is.)
    code, _, err = run_cli(capsys, "train", "lenet5", *SMALL, "--out", blocker / "run")
    assert_one_line_error(code, err, f"cannot write to run directory {blocker / 'run'}: Not a directory")
    assert blocker.read_text() == "not a directory"


def test_overwrite_replaces_the_old_run_whole(capsys, tmp_path):
    # The old run got further (5 steps) than the new one will (2): its checkpoints must not outlive --overwrite,
    # or keep-the-newest pruning would delete the new run's checkpoints and keep the old run's.
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "lenet5", *SMALL, "--out", out)[0] == 0
    code, _, err = run_cli(capsys, "train", "lenet5", *SMALL, "--out", out)
    assert_one_line_error(code, err, f"{out} already holds a run; pass --resume {out} to continue it or --overwrite")
    assert (out / "checkpoints" / "latest").read_text() == "step-00000005"
    code, _, err = run_cli(
        capsys,
        "train",
        "simple_cnn",
        "--dataset",
        "digits",
        "--train-subset",
        "200",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
        "--overwrite",
    )
    assert code == 0, err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest",
        "step-00000002.safetensors",
        "step-00000002.state.pt",
    ]
    assert json.loads((out / "config.json").read_text())["model"] == "simple_cnn"
    assert run_cli(capsys, "eval", out)[0] == 0  # model.safetensors is the new run's


def test_resume_takes_the_runs_own_dataset(capsys, tmp_path):
    # `--dataset` defaults to digits for a new run only; resuming a run on another dataset needs no flag.
    for label, shade in (("dark", 30), ("light", 220)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (32, 32), shade + i).save(tmp_path / "images" / label / f"{i}.png")
    out = tmp_path / "run"
    dataset = f"imagefolder:{tmp_path / 'images'}"
    code, _, err = run_cli(
        capsys,
        "train",
        "lenet5",
        "--dataset",
        dataset,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert code == 0, err
    (out / "checkpoints" / "latest").write_text("step-00000003")  # rewind to the end of epoch 1 (14 train: 3 steps)
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", out, "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "lenet5", "--dataset", "digits", "--resume", out)
    assert_one_line_error(code, err, f"cannot resume {out}: it trained dataset '{dataset}', not 'digits'")


# ------------------------------------------------------------------------------------- batch size 1 and BatchNorm
def test_a_final_batch_of_one_is_dropped(capsys, tmp_path):
    # resnet18 without the small-input stem shrinks 28x28 to 1x1, where batch norm needs two images. 3 images in
    # batches of 2 leave a final batch of one: it is dropped (1 step per epoch), so training works.
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "resnet18",
        "--no-small-input",
        "--dataset",
        "digits",
        "--train-subset",
        "3",
        "--val-fraction",
        "0",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert code == 0, err
    assert (out / "checkpoints" / "latest").read_text() == "step-00000001"
    assert json.loads((out / "results.json").read_text())["status"] == "completed"


def test_batch_size_one_where_batch_norm_sees_one_value_is_a_clear_error(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "resnet18",
        "--no-small-input",
        "--dataset",
        "digits",
        "--train-subset",
        "3",
        "--val-fraction",
        "0",
        "--batch-size",
        "1",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert_one_line_error(
        code,
        err,
        "resnet18 cannot train with --batch-size 1: a batch-norm layer gets one value per "
        "channel (a 1x1 feature map of one image), too few for batch statistics; use --batch-size 2",
    )
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed" and "--batch-size 1" in results["error"]


def test_batch_size_one_works_where_feature_maps_stay_larger(capsys, tmp_path):
    # simple_resnet keeps its 28x28 maps: batch norm has 784 values per channel even for one image.
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "simple_resnet",
        "--dataset",
        "digits",
        "--train-subset",
        "12",
        "--val-fraction",
        "0",
        "--batch-size",
        "1",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert code == 0, err
    assert (out / "checkpoints" / "latest").read_text() == "step-00000012"


# ------------------------------------------------------------------------------------------ more one-line cases
@pytest.mark.parametrize(
    "argv, expected",
    [
        # (--epochs 0/-3/ten, --batch-size 0, --lr -0.1 are in tests/test_cli.py)
        (["--lr", "0"], "argument --lr: expected a positive number, got 0"),
        (["--lr", "abc"], "argument --lr: expected a positive number, got 'abc'"),
        (["--lr", "nan"], "argument --lr: expected a positive number, got nan"),
        (["--batch-size", "-2"], "argument --batch-size: expected a positive whole number, got -2"),
        (["--batch-size", "many"], "argument --batch-size: expected a positive whole number, got 'many'"),
        (["--keep", "0"], "argument --keep: expected a positive whole number, got 0"),
        (["--checkpoint-every", "-1"], "argument --checkpoint-every: expected a positive whole number, got -1"),
    ],
)
def test_bad_numbers_are_one_line(capsys, argv, expected):
    code, _, err = run_cli(capsys, "train", "lenet5", *argv)
    assert_one_line_error(code, err, expected)


def test_resume_without_a_run_or_a_checkpoint(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", tmp_path / "nowhere")
    assert_one_line_error(code, err, f"{tmp_path / 'nowhere' / 'config.json'} does not exist")
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "lenet5", *SMALL, "--out", out)[0] == 0
    for path in (out / "checkpoints").iterdir():
        path.unlink()
    (out / "model.safetensors").unlink()
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", out)
    assert_one_line_error(
        code, err, f"{out} has no checkpoint to resume from (looked for {out / 'checkpoints' / 'latest'})"
    )
    code, _, err = run_cli(capsys, "eval", out)
    assert_one_line_error(
        code, err, f"{out} has no model.safetensors (did the run finish? resume it with --resume {out})"
    )


def test_truncated_cifar_batch_names_the_file(capsys, tmp_path):
    # (IDX truncation and wrong magic numbers, and a CIFAR pickle that names code, are in tests/data.)
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"fine_labels": [0, 1, 2, 3]}
    for name, content in (("train", batch), ("test", batch), ("meta", {b"fine_label_names": [b"x"] * 100})):
        (tmp_path / name).write_bytes(pickle.dumps(content, protocol=2))
    whole = (tmp_path / "test").read_bytes()
    (tmp_path / "test").write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli(capsys, "train", "lenet5", "--dataset", "cifar100", "--data-dir", tmp_path)
    assert_one_line_error(code, err, f"{tmp_path / 'test'} is not a valid CIFAR pickle: ")


def test_a_non_finite_gradient_stops_before_the_weights_change(tmp_path, monkeypatch):
    """A finite loss whose gradient is inf (here injected by a hook) stops the run with the epoch and step, and
    results.json records the failure."""
    import json

    import cnnlab
    from cnnlab.models.lenet import LeNet5

    original_init = LeNet5.__init__

    def init_with_inf_gradient(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.fc3.bias.register_hook(lambda grad: torch.full_like(grad, float("inf")))

    monkeypatch.setattr(LeNet5, "__init__", init_with_inf_gradient)
    with pytest.raises(cnnlab.CnnlabError, match=r"a gradient became non-finite at epoch 1, step 1; .*lower --lr"):
        cnnlab.train("lenet5", dataset="digits", epochs=1, train_subset=200, out=str(tmp_path / "run"), quiet=True)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "gradient" in results["error"]


def test_atomic_write_into_a_file_instead_of_a_folder_is_one_clear_error(tmp_path):
    from cnnlab.errors import CnnlabError
    from cnnlab.files import write_json

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CnnlabError, match=r"could not write .*a-file/results.json: Not a directory"):
        write_json(blocker / "results.json", {"x": 1})
    assert blocker.read_text() == "not a directory"
