"""Running a trained model, with nothing of training in it: evaluation over a split (`evaluation`), a run
directory's model rebuilt for evaluate and predict (`prediction`) and onnxruntime (`onnx_runtime`). They stand on
the shared modules below training and inference (`cnnlab.precision`, `cnnlab.batches`, `cnnlab.building`,
`cnnlab.checkpoint`) and never import the engine or the workflows (tests/test_structure.py checks it)."""

import sys

from cnnlab import batches, building, precision

# Compatibility: these three moved below training and inference (issue #25); the old paths name the same modules.
for _name, _module in {"batches": batches, "model": building, "precision": precision}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
