"""Inference stands on its own: deploying, ImageNet predictions, evaluating and predicting from a run directory
never import the trainer (nor its signal handling or run-directory writing)."""

import subprocess
import sys

import pytest
import torch

from cnnlab.precision import autocast, autocast_dtype, precision_name


@pytest.mark.parametrize(
    "modules",
    [
        "cnnlab.deploy, cnnlab.imagenet",
        "cnnlab.inference.prediction, cnnlab.inference.evaluation, cnnlab.batches",
    ],
)
def test_inference_modules_do_not_import_the_trainer(modules):
    code = (
        f"import sys, {modules}\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cnnlab.training', 'cnnlab.engine', 'cnnlab.workflows'))"
        " and m not in "
        "('cnnlab.engine.config', 'cnnlab.checkpoint')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # the run config and the checkpoint reader only: no trainer, no loop


def test_fp32_means_no_autocast_and_bf16_is_asked_for_by_name():
    assert autocast_dtype("fp32") is None and autocast_dtype("bf16") is torch.bfloat16
    assert precision_name(autocast_dtype("fp32")) == "fp32" and precision_name(torch.bfloat16) == "bf16"
    x = torch.ones(2, 2)
    with autocast(None):
        assert (x @ x).dtype == torch.float32
    with autocast(torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
