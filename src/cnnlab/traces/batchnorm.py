"""`cnnlab trace batchnorm`: the Chapter 14 BatchNorm traces, value by value, scratch against nn.BatchNorm2d.

Batch 0 is the tutorial's 2x2x2x2 tensor (channel 0 holds 1..8, channel 1 holds 10..17). Batches 1, 2, ... are
seeded stand-ins for its "select batch" widget: 8 values per channel around a mean that moves from batch to batch
(the widget's batch 1 reads 4.45 ... 4.48, mean 4.88). `--batch K` trains one step on each of batches 0..K, in
order, then follows batch K through the layer: the running statistics show the momentum average moving.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import OptionValueError
from cnnlab.scratch import BatchNorm2dScratch, batch_norm_2d
from cnnlab.traces.common import max_diff, result

# The [Ch14] tensor, (N=2, C=2, H=2, W=2): sample 0 is [[1, 2], [3, 4]] and [[10, 11], [12, 13]], sample 1 the next.
TUTORIAL_BATCH = np.array(
    [[[[1, 2], [3, 4]], [[10, 11], [12, 13]]],
     [[[5, 6], [7, 8]], [[14, 15], [16, 17]]]], dtype=np.float32,
)  # fmt: skip
MAX_BATCH = 9


def seeded_batch(index: int) -> np.ndarray:
    """Batch `index`: 0 is the tutorial's tensor; others have per-channel means drawn from [2, 8] and spread 2.5,
    rounded to 2 decimals like the widget's values (the means differ from batch to batch: "covariate shift")."""
    if index == 0:
        return TUTORIAL_BATCH.copy()
    rng = np.random.default_rng(index)
    means = rng.uniform(2, 8, size=(1, 2, 1, 1))
    return (means + rng.normal(0, 2.5, size=(2, 2, 2, 2))).round(2).astype(np.float32)


def batchnorm_trace(batch: int = 0, momentum: float = 0.1, gamma: float = 1.0, beta: float = 0.0) -> dict:
    if not 0 <= batch <= MAX_BATCH:
        raise OptionValueError("batch", f"must be 0 (the tutorial's tensor) to {MAX_BATCH}, got {batch}")
    if not 0 < momentum <= 1:
        raise OptionValueError("momentum", f"must be in (0, 1], got {momentum}")
    batches = [seeded_batch(k) for k in range(batch + 1)]
    scratch, layer = BatchNorm2dScratch(2, momentum=momentum), nn.BatchNorm2d(2, momentum=momentum)
    with torch.no_grad():
        for module in (scratch, layer):
            module.weight.fill_(gamma)
            module.bias.fill_(beta)
    history = []  # (running_mean, running_var) of scratch and nn after each training step
    with torch.no_grad():
        for x in batches:
            scratch.train()(torch.from_numpy(x))  # one training step each: the running statistics move
            y_train = layer.train()(torch.from_numpy(x))
            history.append(
                (
                    (scratch.running_mean.clone(), scratch.running_var.clone()),
                    (layer.running_mean.clone(), layer.running_var.clone()),
                )
            )
        x = torch.from_numpy(batches[-1])
        y_eval_scratch, y_eval = scratch.eval()(x), layer.eval()(x)
    rows = _batch_rows(batches[-1], batch, gamma, beta, y_train)
    step = rows[-1][0] + 1
    for k, ((mean_s, var_s), (mean_t, var_t)) in enumerate(history):
        rows.append([step, f"running_mean after batch {k}", mean_s, mean_t, max_diff(mean_s, mean_t)])
        rows.append([step, f"running_var after batch {k}", var_s, var_t, max_diff(var_s, var_t)])
    rows += [
        [
            step + 1,
            "eval-mode y, channel 0: (x - running_mean) / sqrt(running_var + eps)",
            y_eval_scratch[:, 0].flatten(),
            y_eval[:, 0].flatten(),
            max_diff(y_eval_scratch, y_eval),
        ],
        [
            step + 2,
            "eval-mode mean of y per channel (train mode: 0)",
            y_eval_scratch.mean(dim=(0, 2, 3)),
            y_eval.mean(dim=(0, 2, 3)),
            max_diff(y_eval_scratch.mean(dim=(0, 2, 3)), y_eval.mean(dim=(0, 2, 3))),
        ],
    ]
    title = f"BatchNorm2d on batch {batch} ({'the tutorial tensor' if batch == 0 else 'seeded'}), momentum {momentum}"
    data = {
        "batches": batches,
        "y_train": y_train,
        "y_eval": y_eval,
        "running_mean": [h[1][0] for h in history],
        "running_var": [h[1][1] for h in history],
    }
    columns = ["step", "quantity", "scratch", "torch.nn", "max |diff|"]
    return result("batchnorm", title, columns, rows, _notes(batch), data)


def _batch_rows(x: np.ndarray, batch: int, gamma: float, beta: float, y_train: torch.Tensor) -> list[list]:
    """Statistics, x-hat and y of the traced batch: NumPy (`cnnlab.scratch`) against torch."""
    xt = torch.from_numpy(x)
    mean, var, unbiased = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    x_hat = batch_norm_2d(x, np.ones(2), np.zeros(2))  # gamma 1, beta 0: x-hat itself
    x_hat_torch = F.batch_norm(xt, None, None, training=True)
    y = batch_norm_2d(x, np.full(2, gamma), np.full(2, beta))
    torch_stats = (xt.mean(dim=(0, 2, 3)), xt.var(dim=(0, 2, 3), correction=0), xt.var(dim=(0, 2, 3)))
    pairs = [
        (f"x, channel 0 (batch {batch})", x[:, 0].flatten(), xt[:, 0].flatten()),
        (f"x, channel 1 (batch {batch})", x[:, 1].flatten(), xt[:, 1].flatten()),
        ("batch mean mu_B per channel", mean, torch_stats[0]),
        ("batch variance sigma^2_B (/N: normalises)", var, torch_stats[1]),
        ("unbiased variance (/(N-1): feeds running_var)", unbiased, torch_stats[2]),
        ("x_hat, channel 0: (x - mu_B) / sqrt(sigma^2_B + eps)", x_hat[:, 0].flatten(), x_hat_torch[:, 0].flatten()),
        (f"y = {gamma:g} * x_hat + {beta:g}, channel 0 (train mode)", y[:, 0].flatten(), y_train[:, 0].flatten()),
        ("train-mode mean of y per channel", y.mean(axis=(0, 2, 3)), y_train.mean(dim=(0, 2, 3))),
        ("train-mode variance of y per channel (/N)", y.var(axis=(0, 2, 3)), y_train.var(dim=(0, 2, 3), correction=0)),
    ]
    return [[index, name, a, b, max_diff(a, b)] for index, (name, a, b) in enumerate(pairs, start=1)]


def _notes(batch: int) -> list[str]:
    notes = [
        "scratch: cnnlab.scratch.batch_norm_2d (NumPy) for the batch, BatchNorm2dScratch for the running statistics "
        "and eval mode; torch.nn: nn.BatchNorm2d, F.batch_norm and tensor reductions.",
        "Train mode normalises with the batch's /N variance; running_var moves towards the unbiased /(N-1) one "
        "(8 values per channel: factor 8/7), running = (1 - momentum) * running + momentum * batch.",
        "Eval mode uses the running statistics instead: a fixed affine map, so its output is not zero-mean.",
    ]
    if batch == 0:
        notes.append(
            "The tutorial's trace says running_var 1.425 and eval output [0.46, 1.30, 2.13, 2.97]; the code "
            "gives 1.5 and [0.45, 1.27, 2.08, 2.90] (docs/errata.md E08, E09, E15); its widget's 'after norm "
            "mean' of 4.880 is 0 (E06)."
        )
    return notes
