"""cnnlab: classic CNN architectures, runnable, verified and fast."""

__version__ = "0.1.0"

from cnnlab.errors import CnnlabError
from cnnlab.registry import ModelInfo, create_model, list_models, model_info, register_model

_API = ("train", "evaluate", "predict", "compare", "experiment", "list_runs", "export", "optimize_for_inference")


def __getattr__(name: str):
    # The training API loads on first use, so `import cnnlab` for the zoo alone stays light (PEP 562).
    if name in _API:
        from cnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnlab' has no attribute '{name}'")


__all__ = ["CnnlabError", "ModelInfo", "create_model", "list_models", "model_info", "register_model", *_API, "__version__"]
