"""cnnlab: classic CNN architectures, runnable, verified and fast."""

__version__ = "0.1.0"

from cnnlab.errors import CnnlabError
from cnnlab.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["CnnlabError", "ModelInfo", "create_model", "list_models", "model_info", "register_model", "__version__"]
