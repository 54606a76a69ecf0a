"""The vgg-bn experiment: vgg11 against vgg11_bn at equal settings over seeds (quick mode: 128 digits, 1 epoch),
and how its findings weigh a difference against the spread."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.experiments import run_experiment
from cnnlab.experiments.vggbn import findings


def rows(plain: list[float], bn: list[float], diverged: int = 0) -> list[dict]:
    made = [{"model": "vgg11", "outcome": "trained", "test_accuracy": a} for a in plain]
    made += [{"model": "vgg11", "outcome": "diverged", "test_accuracy": math.nan}] * diverged
    return made + [{"model": "vgg11_bn", "outcome": "trained", "test_accuracy": a} for a in bn]


def test_a_difference_within_the_spread_is_not_resolved():
    text = " ".join(findings(rows([0.80, 0.90, 0.85], [0.86, 0.88, 0.87])))
    assert "vgg11: test accuracy 85.00% ± 5.00 (std, n=3; 0 of 3 diverged)" in text
    assert "difference (+2.00 points) is within the spread: not resolved at n=3" in text
    text = " ".join(findings(rows([0.10, 0.11], [0.80, 0.82], diverged=1)))
    assert "BN helps by 70.50 points" in text and "n=2; 1 of 3 diverged" in text
    assert "no difference is measured" in " ".join(findings(rows([], [0.5, 0.6], diverged=2)))


@pytest.mark.slow
def test_quick_run_trains_both_twins_per_seed(tmp_path):
    res = run_experiment("vgg-bn", quick=True, out=tmp_path)
    assert [(row["model"], row["seed"]) for row in res.rows] == [
        ("vgg11", 0),
        ("vgg11", 1),
        ("vgg11_bn", 0),
        ("vgg11_bn", 1),
    ]
    for row in res.rows:  # each seed's run directory is kept, and the table is its results
        saved = json.loads((tmp_path / f"{row['model']}-seed{row['seed']}" / "results.json").read_text())
        assert row["outcome"] == "trained" and row["test_accuracy"] == saved["test_accuracy"]
        # Small-input VGG-11 on 1 channel: convs 9,219,328, classifier 512-512-10 530,442; BN 2 x 2,752 channels
        assert saved["params"] == (9_749_770 if row["model"] == "vgg11" else 9_749_770 + 5_504)
    assert (tmp_path / "vgg_bn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(res.findings) == 4 and "History" in res.findings[-1]
