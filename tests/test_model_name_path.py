"""The acceptance figure of issue #25: following lenet5's name from cnnlab.train through the code, the path climbs
back up the layers (entry points, workflows, engine, shared, models) at most 3 times."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "model_name_path.py"


def test_the_model_name_climbs_back_up_the_layers_at_most_3_times():
    result = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["stops"] > 0 and counts["climbs"] <= 3
