"""Safe loading: no file cnnlab reads can run code, and a damaged file is one clear line naming it, never a
traceback and never a half-loaded model."""

from __future__ import annotations

import ast
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from trust_helpers import assert_one_line_error, run_cli, write_malicious_pickle

import cnnlab
from cnnlab.checkpoint import (
    STATE_SHA256,
    WEIGHTS_SHA256,
    load_checkpoint,
    load_model_weights,
    read_state,
    read_weights,
    read_weights_and_metadata,
)
from cnnlab.errors import CnnlabError
from cnnlab.registry import create_model

SRC = Path(cnnlab.__file__).parent


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """lenet5, 1 epoch on 200 digits: 180 train images, 2 steps of 64 -> checkpoint step-00000002."""
    out = tmp_path_factory.mktemp("finished") / "run"
    previous = torch.get_num_threads()
    cnnlab.train("lenet5", dataset="digits", epochs=1, train_subset=200, threads=1, out=str(out), quiet=True)
    torch.set_num_threads(previous)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ no unpickling
def test_no_code_path_calls_torch_load_without_weights_only():
    """Every torch.load in src/cnnlab passes the literal weights_only=True (torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    cannot override an explicit True); nothing imports `load` bare, and nothing unpickles with plain pickle."""
    torch_loads, unsafe = [], []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization", "pickle"):
                if any(alias.name in ("load", "loads", "Unpickler") for alias in node.names):
                    unsafe.append(f"{where} imports {node.module}.load/loads/Unpickler bare")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "torch.serialization.load"):
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                torch_loads.append(where)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    unsafe.append(f"{where} calls torch.load without weights_only=True")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pickle.load", "pickle.loads"):
                unsafe.append(f"{where} unpickles with plain pickle")
            # A pickle.Unpickler subclass must restrict what it builds (find_class), like the CIFAR reader's.
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "pickle.Unpickler" for b in node.bases):
                if not any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body):
                    unsafe.append(f"{where} {node.name} subclasses pickle.Unpickler without find_class")
    assert torch_loads == ["safeload.py:31"], torch_loads  # the one place; checkpoints and weights files go through it
    assert unsafe == []


# ------------------------------------------------------------------------------------------- malicious pickles
@pytest.mark.parametrize("force_unsafe_env", [False, True])
def test_malicious_weights_for_train_are_refused_and_run_nothing(capsys, tmp_path, monkeypatch, force_unsafe_env):
    if force_unsafe_env:  # torch's escape hatch must not override an explicit weights_only=True
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    evil = write_malicious_pickle(tmp_path / "resnet18-evil.pth", marker, create_model("lenet5").state_dict())
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "lenet5", "--weights", evil, "--epochs", "1", "--out", out)
    assert_one_line_error(code, err, str(evil), "holds pickled code (posix.system)", "refuses", "safetensors")
    assert not marker.exists()
    assert not out.exists()  # refused before the run directory was made


@pytest.mark.parametrize("forged_checksum", [False, True])
def test_malicious_checkpoint_state_for_resume_is_refused_and_runs_nothing(
    capsys, run_copy, tmp_path, monkeypatch, forged_checksum
):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    folder = run_copy / "checkpoints"
    state_path = write_malicious_pickle(folder / "step-00000002.state.pt", marker, {"epoch": 0, "step_in_epoch": 1})
    if forged_checksum:  # the attacker also rewrote the weights file's checksum of its state
        tensors, metadata = read_weights_and_metadata(folder / "step-00000002.safetensors")
        metadata[STATE_SHA256] = hashlib.sha256(state_path.read_bytes()).hexdigest()
        save_file(tensors, folder / "step-00000002.safetensors", metadata=metadata)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "lenet5", "--resume", run_copy)
    if forged_checksum:
        assert_one_line_error(code, err, str(state_path), "holds pickled code (posix.system)", "safetensors")
    else:
        assert_one_line_error(code, err, str(state_path), "is corrupted: it does not match the checksum")
    assert not marker.exists()
    assert snapshot(run_copy) == before  # nothing written, nothing lost


# ------------------------------------------------------------------------------------------------ damaged files
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated": truncate,
    "flipped": lambda path: flip_a_byte(path, -1 if path.suffix == ".safetensors" else path.stat().st_size // 2),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize(
    "command, file, message",
    [
        ("resume", "checkpoints/step-00000002.safetensors", "{damage_message}"),
        (
            "resume",
            "checkpoints/step-00000002.state.pt",
            "is corrupted: it does not match the checksum saved with its weights",
        ),
        ("eval", "model.safetensors", "{damage_message}"),
        ("predict", "model.safetensors", "{damage_message}"),
    ],
)
def test_damaged_file_is_one_line_naming_it(capsys, run_copy, tmp_path, command, file, message, damage):
    # A flipped byte in a tensor is invisible to both formats; only the checksums cnnlab stores catch it.
    damage_message = {
        "truncated": "is not a valid safetensors file (truncated or corrupted?)",
        "flipped": "is corrupted: its tensors no longer match the checksum saved with them",
    }[damage]
    DAMAGE[damage](run_copy / file)
    before = snapshot(run_copy)
    argv = {
        "resume": ["train", "lenet5", "--resume", run_copy],
        "eval": ["eval", run_copy],
        "predict": ["predict", run_copy, tmp_path / "missing.png"],
    }[command]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, str(run_copy / file), message.format(damage_message=damage_message))
    assert snapshot(run_copy) == before


def test_checkpoint_state_without_a_checksum_is_still_checked(tmp_path, finished_run):
    # read_state alone (a checkpoint from before checksums): a truncated archive is a one-line error naming it.
    path = tmp_path / "old.state.pt"
    shutil.copy(finished_run / "checkpoints" / "step-00000002.state.pt", path)
    assert read_state(path)["epoch"] == 1
    truncate(path)
    with pytest.raises(CnnlabError, match=r"^checkpoint .*old\.state\.pt is truncated or corrupted \([^\n]+\)$"):
        read_state(path)


def test_a_bad_checkpoint_leaves_the_model_untouched(run_copy):
    torch.manual_seed(0)
    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unchanged = lambda: all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    folder = run_copy / "checkpoints"
    # Good weights, damaged state: both are verified before any tensor is copied.
    flip_a_byte(folder / "step-00000002.state.pt", 100)
    with pytest.raises(CnnlabError, match="state.pt is corrupted"):
        load_checkpoint(run_copy, model)
    assert unchanged()
    # A well-formed file with one tensor missing: load_state_dict(strict=True) would copy the other nine first.
    tensors, metadata = read_weights_and_metadata(folder / "step-00000002.safetensors")
    del tensors["fc3.bias"]
    metadata.pop(WEIGHTS_SHA256), metadata.pop(STATE_SHA256)
    save_file(tensors, folder / "step-00000002.safetensors", metadata=metadata)
    with pytest.raises(
        CnnlabError, match=r"step-00000002\.safetensors does not match the model \(missing: fc3\.bias\)"
    ):
        load_model_weights(model, folder / "step-00000002.safetensors")
    assert unchanged()


# --------------------------------------------------------------------------------------------- --weights PATH
def test_weights_flag_starts_training_from_the_file(capsys, tmp_path):
    torch.manual_seed(123)  # not the run's seed: the run's own init would differ
    start = create_model("lenet5", in_chans=1, num_classes=10, input_size=28).state_dict()
    path = tmp_path / "lenet5-start.pth"
    torch.save(start, path)
    out = tmp_path / "run"
    # A learning rate of 1e-12 leaves the weights where they started, to within 1e-9.
    code, _, err = run_cli(
        capsys,
        "train",
        "lenet5",
        "--weights",
        path,
        "--lr",
        "1e-12",
        "--epochs",
        "1",
        "--train-subset",
        "200",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out,
    )
    assert code == 0, err
    final = read_weights(out / "model.safetensors")
    assert all(torch.allclose(final[k], start[k], atol=1e-9) for k in start)
    torch.manual_seed(0)  # the run's seed: what it would have started from without --weights
    fresh = create_model("lenet5", in_chans=1, num_classes=10, input_size=28).state_dict()
    assert not torch.allclose(final["conv1.weight"], fresh["conv1.weight"], atol=1e-3)
    assert '"weights": "' + str(path) + '"' in (out / "config.json").read_text()


def test_weights_flag_refuses_another_architecture_and_resume(capsys, tmp_path, finished_run):
    path = tmp_path / "mini_vgg.safetensors"
    save_file(create_model("mini_vgg").state_dict(), path)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "lenet5", "--weights", path, "--out", out)
    assert_one_line_error(code, err, f"weights file {path} does not fit lenet5: missing: conv1.weight")
    assert not out.exists()
    code, _, err = run_cli(capsys, "train", "lenet5", "--weights", path, "--resume", finished_run)
    assert_one_line_error(code, err, "--weights starts a new run; --resume continues")


@pytest.mark.filterwarnings("ignore:.*head has 1000 classes")
def test_weights_that_need_the_imagenet_stem_say_so(capsys, tmp_path):
    # On 28x28 digits resnet18 gets the small-input (3x3) stem, which a torchvision checkpoint's 7x7 conv1 cannot fill.
    path = tmp_path / "resnet18.pth"
    torch.save(create_model("resnet18").state_dict(), path)
    code, _, err = run_cli(capsys, "train", "resnet18", "--weights", path, "--out", tmp_path / "run")
    assert_one_line_error(
        code,
        err,
        "conv1.weight [64, 3, 7, 7] vs [64, 1, 3, 3]",
        "pass --no-small-input to keep the stem the weights were trained with",
    )


def test_a_checkpoint_with_another_head_warns_in_one_line_and_trains(capsys, tmp_path):
    path = tmp_path / "lenet5-5-classes.pth"
    torch.save(create_model("lenet5", num_classes=5, input_size=28).state_dict(), path)  # digits are 28x28
    code, _, err = run_cli(
        capsys,
        "train",
        "lenet5",
        "--weights",
        path,
        "--train-subset",
        "300",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    head = create_model("lenet5", input_size=28).classifier_path
    assert err == (
        f"cnnlab: warning: {path}: the checkpoint's head has 5 classes, the model 10; keeping a freshly "
        f"initialised {head}.weight, {head}.bias\n"
    )


def test_pickled_code_in_an_archive_is_found_from_its_opcodes_before_torch_unpickles(tmp_path, monkeypatch):
    """A torch.save archive naming a callable is refused from a static read of its pickle: torch.load never runs,
    and the typed error carries the callable."""
    from cnnlab.errors import UnsafePickleError
    from cnnlab.safeload import load_weights_only, unsafe_globals

    data = write_malicious_pickle(tmp_path / "evil.pth", tmp_path / "pwned", {"w": torch.zeros(2)}).read_bytes()
    assert unsafe_globals(data) == ["posix.system"]
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load ran on a refused file"))
    with pytest.raises(UnsafePickleError) as caught:
        load_weights_only(data, "weights file evil.pth", "use safetensors")
    assert caught.value.globals == ["posix.system"] and caught.value.label == "weights file evil.pth"
    assert not (tmp_path / "pwned").exists()
    safe = tmp_path / "safe.pt"
    torch.save({"w": torch.zeros(2)}, safe)
    assert unsafe_globals(safe.read_bytes()) == [] and unsafe_globals(b"not an archive") == []
