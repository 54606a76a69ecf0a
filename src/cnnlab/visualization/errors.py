"""The user errors of `cnnlab visualize`: each is a CnnlabError, so the CLI prints one line and exits with 2."""

from __future__ import annotations

from cnnlab.errors import CnnlabError


class UnknownLayerError(CnnlabError):
    """A --layer name that is not a module of the model (the message lists the valid ones)."""


class NotAConvError(CnnlabError):
    """A layer whose filters were asked for, but which holds no convolution kernels."""


class TargetOutOfRangeError(CnnlabError):
    """A --target class index outside 0..num_classes-1."""


class ChannelMismatchError(CnnlabError):
    """An image with other channels than the model takes (colour for a grey model, 4 for 3...)."""


class TestDataMissingError(CnnlabError):
    """--from-test on a run whose dataset cannot be loaded here."""

    __test__ = False  # a name starting with "Test" is not a pytest class
