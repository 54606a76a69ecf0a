"""The model zoo. Importing this package registers every family's builders."""

from cnnlab.models import lenet, resnet, vgg  # noqa: F401  (registers the builders)
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import BasicBlock, Bottleneck

__all__ = ["ImageClassifier", "BasicBlock", "Bottleneck"]
