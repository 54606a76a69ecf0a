"""Runs that die: SIGKILL mid-epoch, SIGKILL in the middle of writing a checkpoint, Ctrl-C and SIGTERM.
Each is a real `cnnlab train` process; each resumed run must equal the uninterrupted reference run bit for bit
(final weights, test loss) and row for row (metrics.csv apart from its wall-time columns)."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from trust_helpers import RECIPE, STEPS_PER_EPOCH, metrics_rows, run_cli, spawn, wait_for

from cnnlab.checkpoint import STATE_SHA256, read_state, read_weights, read_weights_and_metadata

pytestmark = pytest.mark.slow  # every test here trains in a child process and signals it (SIGKILL, SIGINT, SIGTERM)


def latest_stem(run_dir) -> str:
    return (run_dir / "checkpoints" / "latest").read_text().strip()


def assert_resumes_to_the_reference(capsys, run_dir, reference_run) -> None:
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", run_dir, "--quiet")
    assert code == 0, err
    resumed, reference = read_weights(run_dir / "model.safetensors"), read_weights(reference_run / "model.safetensors")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    assert metrics_rows(run_dir) == metrics_rows(reference_run) and len(metrics_rows(run_dir)) == 2
    results, expected = (json.loads((d / "results.json").read_text()) for d in (run_dir, reference_run))
    assert results["status"] == "completed"
    assert (results["test_loss"], results["test_accuracy"]) == (expected["test_loss"], expected["test_accuracy"])


def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, capsys, reference_run):
    run_dir = tmp_path / "run"
    process = spawn("train", "lenet5", *RECIPE, "--checkpoint-every", "10", "--out", run_dir)
    wait_for(lambda: (run_dir / "checkpoints" / "latest").exists(), process)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert not (run_dir / "results.json").exists()  # it really died before the end
    state = read_state(run_dir / "checkpoints" / f"{latest_stem(run_dir)}.state.pt")
    assert state["epoch"] == 0 and 0 < state["step_in_epoch"] < STEPS_PER_EPOCH  # mid-epoch 1
    assert state["epoch_so_far"]["seen"] == 4 * state["step_in_epoch"]  # the epoch's running sums travel along
    assert_resumes_to_the_reference(capsys, run_dir, reference_run)


# Run in the child before `cnnlab train`: while writing step 60's .state.pt, write half of it, flush it to disk and
# SIGKILL the process, the worst moment: step 60's weights file is already in place, its state is half written,
# and `latest` still names step 30.
KILL_WHILE_SAVING = """
import os, signal
from cnnlab import checkpoint
real_atomic_write = checkpoint.atomic_write
def atomic_write(path, write):
    if path.name != "step-00000060.state.pt":
        return real_atomic_write(path, write)
    def half_then_die(handle):
        import io
        buffer = io.BytesIO()
        write(buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real_atomic_write(path, half_then_die)
checkpoint.atomic_write = atomic_write
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, capsys, reference_run):
    run_dir = tmp_path / "run"
    process = spawn(
        "train",
        "lenet5",
        *RECIPE,
        "--checkpoint-every",
        "30",
        "--keep",
        "2",
        "--out",
        run_dir,
        harness=KILL_WHILE_SAVING,
    )
    assert process.wait(timeout=120) == -signal.SIGKILL
    folder = run_dir / "checkpoints"
    partial = list(folder.glob(".step-00000060.state.pt.tmp-*"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # it died mid-write
    assert (folder / "step-00000060.safetensors").exists() and not (folder / "step-00000060.state.pt").exists()
    assert latest_stem(run_dir) == "step-00000030"
    # The pair `latest` names is whole: its weights match their checksum, its state the checksum stored with them.
    tensors, metadata = read_weights_and_metadata(folder / "step-00000030.safetensors")
    state = read_state(folder / "step-00000030.state.pt", metadata[STATE_SHA256])
    assert (state["epoch"], state["step_in_epoch"]) == (0, 30) and tensors["conv1.weight"].shape == (6, 1, 5, 5)
    assert_resumes_to_the_reference(capsys, run_dir, reference_run)
    assert not list(folder.glob(".*.tmp-*"))  # the dead process's temp file was cleaned up
    assert sorted(p.name for p in folder.iterdir()) == [  # --keep 2
        "latest",
        "step-00000150.safetensors",
        "step-00000150.state.pt",
        "step-00000180.safetensors",
        "step-00000180.state.pt",
    ]


@pytest.mark.parametrize("signame, exit_code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_save_and_say_how_to_resume(tmp_path, capsys, reference_run, signame, exit_code):
    run_dir = tmp_path / "run"
    process = spawn("train", "lenet5", *RECIPE, "--checkpoint-every", "30", "--out", run_dir)
    wait_for(lambda: (run_dir / "checkpoints" / "latest").exists(), process)  # step 30 is done: mid-epoch 1
    process.send_signal(getattr(signal, signame))
    assert process.wait(timeout=60) == exit_code
    err = process.stderr.read()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"cnnlab: stopped by {signame} at epoch 1, step ")
    assert err.rstrip().endswith(f"checkpoint saved; resume with: cnnlab train lenet5 --resume {run_dir}")
    step = int(err.split(", step ")[1].split(";")[0])
    assert latest_stem(run_dir) == f"step-{step:08d}"  # saved at the step it stopped after, not the last periodic one
    assert json.loads((run_dir / "results.json").read_text())["status"] == "interrupted"
    assert_resumes_to_the_reference(capsys, run_dir, reference_run)
