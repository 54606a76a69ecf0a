"""Property: for every registry model, at random valid input sizes and channel counts, `summarize(name, CxHxW)`
(what `cnnlab summary NAME --input CxHxW` prints) reports, row by row, the output shapes of a real forward pass of
that model, and its totals equal the model's parameter count.

(The conv/pool output-size formula property is tests/measure/test_receptive_field.py; create_model for random
in_chans and num_classes on every model is tests/models/test_interface.py.)
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from zoo_sample import zoo_loop

from cnnlab.measure import summarize
from cnnlab.models.meta import on_meta
from cnnlab.registry import create_model, list_models, min_input_size

MODELS = zoo_loop(list_models())  # the big variants skip in `make test` (tests/zoo_sample.py)
REAL_LIMIT = 5_000_000  # bigger models run on the meta device: the same shapes, without memory, init or arithmetic


def forward_shapes(model: nn.Module, image: torch.Tensor) -> tuple[list[tuple[str, tuple[int, ...]]], torch.Tensor]:
    """(leaf name, per-image output shape) for every leaf call of one eval-mode forward, and the output."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        module.register_forward_hook(lambda m, a, out, name=name: seen.append((name, tuple(out.shape[1:]))))
        for name, module in model.named_modules()
        if next(module.children(), None) is None
    ]
    try:
        with torch.no_grad():
            output = model.eval()(image)
    finally:
        for handle in handles:
            handle.remove()
    return seen, output


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(in_chans=st.integers(1, 3), extra=st.integers(0, 12))
def test_summary_rows_match_a_real_forward_pass(name: str, in_chans: int, extra: int):
    with on_meta():
        default = create_model(name)
    device = "cpu" if sum(p.numel() for p in default.parameters()) <= REAL_LIMIT else "meta"
    side = min_input_size(default) + extra
    with torch.device(device):
        summary = summarize(name, (in_chans, side, side))
        torch.manual_seed(0)
        model = create_model(name, in_chans=in_chans, input_size=side)
    shapes, output = forward_shapes(model, torch.zeros(1, in_chans, side, side, device=device))
    rows = [(row.name, row.output_shape) for row in summary.rows if row.name != "(other)"]
    assert rows == shapes
    assert output.shape == (1, model.num_classes)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.input_shape == (in_chans, side, side)
