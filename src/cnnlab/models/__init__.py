"""The model zoo: one file per family. Importing this package imports every module in it, which runs the
families' @register_model decorators, so a new family file needs no edit here."""

import importlib
import pkgutil

from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import BasicBlock, Bottleneck

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ImageClassifier", "BasicBlock", "Bottleneck"]
