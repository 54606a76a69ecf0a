"""Measures of a network: parameter and MAC counts, per-layer summaries, receptive fields and layer specs.

count_params(model)                       # 11,689,512 for resnet18
count_macs(model, (3, 224, 224))          # 1,814,073,344 (torchvision publishes 1.81 GFLOPS, i.e. GMACs)
summary_table(summarize("lenet5", (1, 28, 28)))
summarize("conv 64 k7 s2 p3; maxpool k3 s2 p1", (3, 224, 224))
"""

from cnnlab.measure.counting import count_macs, count_params
from cnnlab.measure.receptive import effective_receptive_field, receptive_field
from cnnlab.measure.spec import build_layer_spec, parse_input_shape
from cnnlab.measure.summary import LayerRow, Summary, summarize, summary_table

__all__ = [
    "LayerRow",
    "Summary",
    "build_layer_spec",
    "count_macs",
    "count_params",
    "effective_receptive_field",
    "parse_input_shape",
    "receptive_field",
    "summarize",
    "summary_table",
]
