"""cnnlab's errors cross process boundaries intact: a sweep trial, a bench worker or a forkserver child that
raises one hands its parent the same error, with its fields, not a TypeError from unpickling."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from cnnlab.engine.signals import TrainingInterrupted
from cnnlab.errors import (
    BatchNormBatchTooSmall,
    CnnlabError,
    OptionValueError,
    ResumeConflictError,
    RunFileError,
)
from cnnlab.measure.spec import LayerSpecError
from cnnlab.models.references import ModelReferenceError

ERRORS = [
    CnnlabError("a plain message"),
    OptionValueError("progressive_resize", "16: on 16-pixel images, the forward pass failed"),
    ResumeConflictError("batch_size", 64, 128),
    RunFileError("runs/x/results.json", "is not JSON"),
    BatchNormBatchTooSmall("resnet20", 2, 2, "layer1.0.bn1", 1),
    ModelReferenceError("nets.py:Net", "the output is [2, 7] for 2 images"),
    LayerSpecError("fc ten", "'ten' is not a whole number"),
    TrainingInterrupted("stopped by SIGTERM at epoch 1, step 3", "SIGTERM"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_pickles_with_its_message_and_fields(error):
    error.exit_code = 143  # set after construction, as the CLI reads it
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.args == error.args
    assert {k: v for k, v in vars(copy).items()} == {k: v for k, v in vars(error).items()}


def refuse(option: str) -> None:
    raise OptionValueError(option, "is refused in a worker")


def test_an_error_raised_in_a_worker_process_reaches_the_parent_as_itself():
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(OptionValueError) as raised:
            pool.submit(refuse, "tta_shift").result()
    assert raised.value.option == "tta_shift" and str(raised.value) == "--tta-shift is refused in a worker"
