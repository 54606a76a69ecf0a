"""Compatibility: the old training package, split in issue #25 into `cnnlab.engine` (the loop and what it owns),
`cnnlab.workflows` (the commands that use it) and modules below both training and inference (`cnnlab.checkpoint`,
`cnnlab.plots`). `cnnlab.training.<module>` still imports, as the very module object at its new home (so that
monkeypatching through the old path patches the new module). New code imports the new homes.
"""

import sys

from cnnlab import checkpoint, plots
from cnnlab.engine import (
    budget,
    config,
    device,
    distributed,
    lookahead,
    progress,
    signals,
    tensorboard_log,
    trainer,
    whitening,
)
from cnnlab.workflows import comparison, finetune, leaderboard, seeds, speedrun

MOVED = {
    "budget": budget,
    "checkpoint": checkpoint,
    "comparison": comparison,
    "config": config,
    "device": device,
    "distributed": distributed,
    "finetune": finetune,
    "leaderboard": leaderboard,
    "lookahead": lookahead,
    "plots": plots,
    "progress": progress,
    "seeds": seeds,
    "signals": signals,
    "speedrun": speedrun,
    "tensorboard_log": tensorboard_log,
    "trainer": trainer,
    "whitening": whitening,
}
for _name, _module in MOVED.items():
    sys.modules[f"{__name__}.{_name}"] = _module
