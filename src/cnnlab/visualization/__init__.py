"""Seeing inside a network: filters, feature maps, Grad-CAM and saliency, as arrays first and PNGs second.

    import cnnlab
    model = cnnlab.load_model("runs/resnet20-fashion-mnist-...")          # eval mode, final weights
    maps = cnnlab.feature_maps(run_dir, ["shoe.png"])                    # {stage: [N, C, h, w]}
    heat = cnnlab.attribution(run_dir, images, method="gradcam")         # [N, H, W] in [0, 1]
    paths = cnnlab.visualize(run_dir, from_test=4)                       # the PNGs of `cnnlab visualize`

`loading` turns a run directory or model and files / PIL images / uint8 tensors into a preprocessed batch;
`activations`, `heatmaps` and `kernels` compute; `plots` draws; `report` writes the pictures. (The package is
not called `visualize`: importing it would shadow the function `cnnlab.visualize`.)
"""

import importlib

# Loaded on first use (PEP 562), so the CLI's parser can import `visualization.command` without torch or matplotlib.
_HOMES = {
    "feature_maps": "activations",
    "attribution": "heatmaps",
    "filters": "kernels",
    "load_model": "loading",
    "visualize": "report",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"cnnlab.visualization.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'cnnlab.visualization' has no attribute '{name}'")


__all__ = ["attribution", "feature_maps", "filters", "load_model", "visualize"]
