"""Issue #22: `cnnlab finetune RUN` where RUN trained a network of your own. The model is rebuilt from the run's
copy of its code (model_source.py, under the trust rule) or from its stored spec; `--head last` draws a new final
linear layer, `--head linear` cuts a spec's classifier to one (code builds its own classifier: refused in one
line). The fine-tuned run is an ordinary run: `cnnlab eval` rebuilds it, `cnnlab runs` lists it by a short label.
Tiny: 200 digits, 1 epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ownnet_support import NET, one_line_error
from safetensors.torch import load_file

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.rundir import RunDir
from cnnlab.workflows.finetune import spec_with_head
from cnnlab.workflows.leaderboard import COLUMNS, list_runs, table_row

TINY = ["--dataset", "digits", "--epochs", "1", "--train-subset", "200", "--quiet"]
SPEC2 = "conv 8 k3 p1; relu; maxpool k2; flatten; fc 32; relu; fc 10"  # a two-layer classifier


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A file network's run and a spec's, each fine-tuned with its backbone frozen: the file's with --head last,
    the spec's with --head linear. Returns the folder and {name: run folder}."""
    root = tmp_path_factory.mktemp("own-finetune")
    (root / "my_cnn.py").write_text(NET)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("CNNLAB_STATE_DIR", str(root / "state"))
        assert main(["train", "my_cnn.py:MyCNN", *TINY, "--out", "file"]) == 0
        assert main(["train", SPEC2, *TINY, "--out", "spec"]) == 0
        for source, head in (("file", "last"), ("spec", "linear")):
            argv = ["finetune", source, *TINY, "--head", head, "--freeze", "backbone", "--out", f"{source}-ft"]
            assert main(argv) == 0
        yield root


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


@pytest.mark.slow
def test_a_file_network_is_rebuilt_from_its_runs_copy_with_a_new_last_layer(runs):
    source, tuned = runs / "file", runs / "file-ft"
    config = RunDir(tuned).read_config().train_config()
    assert config.model == "my_cnn.py:MyCNN" and config.model_code["arguments"] == {"num_classes": 10, "in_chans": 1}
    assert (tuned / "model_source.py").read_text() == NET  # the new run keeps the code it was rebuilt from
    before, after = weights(source), weights(tuned)
    assert set(before) == set(after) == {"features.0.weight", "features.0.bias", "head.1.weight", "head.1.bias"}
    assert torch.equal(before["features.0.weight"], after["features.0.weight"])  # frozen backbone, carried over
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])  # a new head, trained
    record = RunDir(tuned).read_finetune()
    assert record.trainable_params == 8 * 14 * 14 * 10 + 10  # the final linear layer alone
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_STATE_DIR", str(runs / "state"))
        evaluated = cnnlab.evaluate(tuned, runtime="torch")  # rebuilt from the run's copy, as trained
    assert evaluated["test_accuracy"] == pytest.approx(
        RunDir(tuned).read_results().to_dict()["test_accuracy"], abs=1e-9
    )


@pytest.mark.slow
def test_a_spec_gets_its_classifier_cut_to_one_linear_layer(runs):
    source, tuned = runs / "spec", runs / "spec-ft"
    config = RunDir(tuned).read_config().train_config()
    assert config.model == "conv 8 k3 p1; relu; maxpool k2; flatten; fc 10" and config.model_code is None
    before, after = weights(source), weights(tuned)
    assert set(after) == {"conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias"}
    assert before["fc1.weight"].shape == (32, 8 * 14 * 14) and after["fc1.weight"].shape == (10, 8 * 14 * 14)
    assert torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert RunDir(tuned).read_finetune().trainable_params == 8 * 14 * 14 * 10 + 10
    assert cnnlab.evaluate(tuned, runtime="torch")["test_accuracy"] == pytest.approx(
        RunDir(tuned).read_results().to_dict()["test_accuracy"], abs=1e-9
    )


@pytest.mark.slow
def test_runs_lists_own_networks_by_a_short_label(runs):
    cells = {Path(row["run_dir"]).name: table_row(row, COLUMNS, runs)[1] for row in list_runs(runs)}
    assert cells == {
        "file": "MyCNN (my_cnn.py)",
        "file-ft": "MyCNN (my_cnn.py)",
        "spec": "spec: conv 8 k3 p1; relu; max…",
        "spec-ft": "spec: conv 8 k3 p1; relu; max…",
    }


@pytest.mark.slow
def test_head_linear_on_code_is_one_line(runs, capsys, monkeypatch):
    monkeypatch.chdir(runs)
    monkeypatch.setenv("CNNLAB_STATE_DIR", str(runs / "state"))
    err = one_line_error(capsys, ["finetune", "file", *TINY, "--head", "linear", "--out", "refused"])
    assert "--head linear replaces a whole classifier; my_cnn.py:MyCNN is code" in err and "--head last" in err
    assert not (runs / "refused").exists()


def test_spec_with_head_rewrites_the_classifier_for_the_new_class_count():
    assert spec_with_head(SPEC2, 5, "last") == "conv 8 k3 p1; relu; maxpool k2; flatten; fc 32; relu; fc 5"
    assert spec_with_head(SPEC2, 100, "linear") == "conv 8 k3 p1; relu; maxpool k2; flatten; fc 100"
    assert (
        spec_with_head("conv 8 k3; res(conv 8 k3 p1); gap; fc 10", 3, "linear")
        == "conv 8 k3; res(conv 8 k3 p1); gap; fc 3"
    )
    with pytest.raises(CnnlabError, match="has none at its top level"):
        spec_with_head("conv 10 k3; gap", 10, "last")
    with pytest.raises(CnnlabError, match="neither"):
        spec_with_head("conv 8 k3; fc 10", 10, "linear")
    with pytest.raises(CnnlabError, match="write its classifier into the spec"):
        spec_with_head(SPEC2, 10, "fc 64; relu")
