"""The model registry's public names. The registry itself lives with the models, in `cnnlab.models._registry`
(as timm keeps its own); this module re-exports it, so `from cnnlab.registry import create_model` keeps working.

Model files import `register_model` from `cnnlab.models._registry`, never from here: importing this module
imports the models package, whose files would then find it half-initialised.
"""

from cnnlab.models._registry import (
    ModelInfo,
    create_model,
    list_models,
    min_input_size,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "list_models", "min_input_size", "model_info", "register_model"]
