"""cnnlab: classic CNN architectures, runnable, verified and fast."""

from cnnlab._version import __version__
from cnnlab.errors import CnnlabError
from cnnlab.registry import ModelInfo, create_model, list_models, model_info, register_model

_API = ("train", "evaluate", "predict", "compare", "experiment", "list_runs", "export", "optimize_for_inference")

# Not `cnnlab.visualize` as a package: importing it would replace the function of that name on this module.
_VISUAL = ("load_model", "feature_maps", "attribution", "visualize")
_FIELDS = ("receptive_field", "effective_receptive_field")  # of a model or a registered name
_SUMMARY = {"summary": "summarize"}  # cnnlab.summary("resnet50", "3x32x32", num_classes=10, small_input=True)


def __getattr__(name: str):
    # The training API loads on first use, so `import cnnlab` for the zoo alone stays light (PEP 562).
    if name in _API:
        from cnnlab import api

        return getattr(api, name)
    if name in _VISUAL:  # seeing inside a model (captum, matplotlib) loads only when asked for
        from cnnlab import visualization

        return getattr(visualization, name)
    if name in _FIELDS:
        from cnnlab.measure import receptive

        return getattr(receptive, name)
    if name in _SUMMARY:
        from cnnlab.measure import summary

        return getattr(summary, _SUMMARY[name])
    raise AttributeError(f"module 'cnnlab' has no attribute '{name}'")


__all__ = [
    "CnnlabError",
    "ModelInfo",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    *_API,
    *_VISUAL,
    *_FIELDS,
    *_SUMMARY,
    "__version__",
]
