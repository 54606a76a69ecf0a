"""The experiments that compare a network that may diverge (batchnorm's twin without BN, vgg-bn's vgg11) count
exactly a `NonFiniteLoss` as "diverged": any other error of a run propagates, even one that left a failed
results.json behind, as the trainer's `fail` does for every failure."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.errors import CnnlabError, NonFiniteLoss
from cnnlab.experiments import batchnorm, vggbn
from cnnlab.experiments.common import ExperimentOptions

EPOCH_ROW = {"epoch": 1, "train_loss": 2.5, "train_accuracy": 0.1, "val_loss": 2.4, "val_accuracy": 0.12}


def failing_train(error: CnnlabError):
    """A stand-in for `common.train` that fails like the trainer: a failed results.json, then the error."""

    def train(options, data, label, run_name, model=None, **config):
        run_dir = options.out / run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = {"status": "failed", "error": str(error), "metrics": [EPOCH_ROW]}
        (run_dir / "results.json").write_text(json.dumps(saved))
        raise error

    return train


def diverged() -> NonFiniteLoss:
    return NonFiniteLoss("loss", 2, 3, math.inf, 0.1, "no checkpoint had been written yet", [EPOCH_ROW])


@pytest.fixture
def options(tmp_path) -> ExperimentOptions:
    return ExperimentOptions(quick=True, out=tmp_path, epochs=1)


def test_batchnorm_twins_propagate_an_error_that_is_not_a_divergence(options, monkeypatch):
    monkeypatch.setattr(batchnorm, "train", failing_train(CnnlabError("the disk is full")))
    with pytest.raises(CnnlabError, match="^the disk is full$"):
        batchnorm.train_twins(options, depth=8)


def test_batchnorm_twins_count_a_non_finite_loss_as_diverged(options, monkeypatch):
    monkeypatch.setattr(batchnorm, "train", failing_train(diverged()))
    rows, curves, _ = batchnorm.train_twins(options, depth=8)
    assert [row["measured"] for row in rows] == [f"2.5000; diverged: {diverged()}"] * 2
    assert [row["test_accuracy"] for row in rows] == [None, None]
    assert curves == {"plain-8 with BN": [EPOCH_ROW], "plain-8 without BN": [EPOCH_ROW]}


def test_vggbn_propagates_an_error_that_is_not_a_divergence(options, monkeypatch):
    monkeypatch.setattr(vggbn, "train", failing_train(CnnlabError("the disk is full")))
    with pytest.raises(CnnlabError, match="^the disk is full$"):
        vggbn.train_one(options, None, "vgg11", seed=0, epochs=1)


def test_vggbn_counts_a_non_finite_loss_as_diverged(options, monkeypatch):
    monkeypatch.setattr(vggbn, "train", failing_train(diverged()))
    row, metrics = vggbn.train_one(options, None, "vgg11", seed=0, epochs=1)
    assert (row["outcome"], row["final_train_loss"], metrics) == ("diverged", 2.5, [EPOCH_ROW])
    assert math.isnan(row["test_accuracy"]) and math.isnan(row["train_seconds"])
