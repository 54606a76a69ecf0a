"""The one interface every cnnlab model has, so the trainer never special-cases a family.

    features = model.forward_features(x)   # [B, C, h, w] (or [B, D] for flatten-style nets)
    logits = model.forward_head(features)  # [B, num_classes]
    model.reset_classifier(5)              # a new, freshly initialised final linear layer
    model.stages()                         # the modules whose outputs are the feature pyramid

A subclass builds its layers, then names where its final linear layer lives (`classifier_path`, a dotted
attribute path such as "fc" or "classifier.6", chosen to mirror torchvision's parameter names) and which
attributes are its stages (`stage_names`).

An input the network cannot take (too few pixels for its strides and kernels, or the wrong channel count)
raises a CnnlabError that names the minimum, e.g. "input 3x16x16 is too small for alexnet: the minimum is
3x63x63". The check runs only after the forward pass has failed, so a normal forward pays nothing for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import CnnlabError


class ImageClassifier(nn.Module):
    classifier_path: str = "fc"  # dotted path of the final nn.Linear
    head_path: str | None = None  # after `replace_head`: the whole new classifier (its hidden layers and final linear)
    stage_names: tuple[str, ...] = ()  # attributes whose outputs are the feature maps, shallow to deep
    model_name: str | None = None  # the registered name (set by the registry's builders), for messages

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.forward_head(self.forward_features(x))
        except (RuntimeError, ValueError) as error:
            self.explain_input_error(x, error)
            raise  # the input is fine, so this is a genuine failure: keep it as it is

    def explain_input_error(self, x: torch.Tensor, error: Exception) -> None:
        """Call when a forward pass on `x` has failed: raises a CnnlabError if `x` is the cause (a subclass
        that overrides `forward` wraps it the same way), returns if `x` is fine."""
        problem = self.input_problem(x)
        if problem is not None:
            raise CnnlabError(problem) from error

    def input_problem(self, x: torch.Tensor) -> str | None:
        """Why this model cannot take `x` (shape, channels or size), or None if it should."""
        name = self.model_name or type(self).__name__
        if x.ndim != 4:
            return f"{name} takes a batch of images [B, C, H, W], not a tensor of shape {list(x.shape)}"
        _, chans, height, width = x.shape
        if chans != self.in_chans:
            return (
                f"input {chans}x{height}x{width} has {chans} channel(s) but {name} takes {self.in_chans} (see in_chans)"
            )
        try:
            side = min_input_size(self)
        except CnnlabError:
            return None
        if height < side or width < side:
            return f"input {chans}x{height}x{width} is too small for {name}: the minimum is {chans}x{side}x{side}"
        return None

    def get_classifier(self) -> nn.Linear:
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer by a new one with `num_classes` outputs (e.g. for transfer)."""
        old = self.get_classifier()
        parent_path, _, attr = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_path) if parent_path else self
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        setattr(parent, attr, new.to(device=old.weight.device, dtype=old.weight.dtype))
        self.num_classes = num_classes

    def replace_head(self, head: str, num_classes: int | None = None) -> None:
        """Replace the WHOLE classifier (the module holding the final linear layer: `classifier` for the mobile
        nets, VGG and AlexNet, `fc` where that is one layer) by `head`: "linear", one nn.Linear from the
        classifier's input width (576 for mobilenet_v3_small), as the transfer-learning tutorials do; or a layer
        spec (cnnlab/measure/spec.py: fc, activations, dropout, bn) on that input, then a Linear to the classes.
        CnnlabError for a family whose forward reads its classifier's layers by position (ConvNeXt) or whose
        classifier has no linear layer (SqueezeNet): those keep `reset_classifier`."""
        top = self.classifier_path.split(".")[0]
        new = whole_head(self, top, head, num_classes or self.num_classes)
        check_head_runs(self, top, new, head)
        setattr(self, top, new)
        self.classifier_path = f"{top}.out"  # an instance attribute: get_classifier finds the new final linear
        self.head_path = top
        self.num_classes = new.out.out_features

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a torchvision checkpoint's keys onto this model's. The identity for families whose parameter
        names mirror torchvision's; a family whose names differ overrides it (and says so in its file)."""
        return state_dict

    def stages(self) -> list[nn.Module]:
        # Dotted names reach into containers such as torchvision's `features` Sequential.
        return [self.get_submodule(name) for name in self.stage_names]


def whole_head(model: ImageClassifier, top: str, head: str, num_classes: int) -> nn.Sequential:
    """`head` ("linear" or a layer spec) as an nn.Sequential ending in a Linear named `out`, its input the width
    of the first linear layer of `model`'s module `top`, on that module's device and dtype."""
    from cnnlab.measure.spec import build_head_spec  # the design language builds on torch alone; no cycle

    old = model.get_submodule(top)
    first = next((m for m in old.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        name = model.model_name or type(model).__name__
        raise CnnlabError(f"{name}'s classifier has no linear layer to take its input width from; use --head last")
    width = first.in_features
    layers, width = (nn.Sequential(), width) if head == "linear" else build_head_spec(head, width)
    layers.add_module("out", nn.Linear(width, num_classes))
    return layers.to(device=first.weight.device, dtype=first.weight.dtype)


_heads_that_run: set[tuple[type, str, str]] = set()  # (family, module, head's repr) probed and found to run


def check_head_runs(model: ImageClassifier, top: str, head: nn.Sequential, label: str) -> None:
    """CnnlabError unless `model` with `head` in place of its module `top` still runs (probed on a meta copy, once
    per family and head: whether the forward reads the classifier by position is the family's code)."""
    key = (type(model), top, repr(head))
    if key in _heads_that_run:
        return
    probe = meta_copy(model)
    side = min_input_size(model)
    setattr(probe, top, meta_copy(head))
    probe.eval()
    x = torch.zeros(2, model.in_chans, side, side, device="meta")
    try:
        probe.forward_head(probe.forward_features(x))
    # Any failure here is the family's forward reading the old classifier's layers by position or by name.
    except (RuntimeError, IndexError, TypeError, AttributeError, ValueError) as error:
        name = model.model_name or type(model).__name__
        raise CnnlabError(
            f"--head {label} cannot replace {name}'s whole classifier ({type(error).__name__}: its forward reads "
            "the old classifier's layers); use --head last"
        ) from None
    _heads_that_run.add(key)


_LARGEST_PROBE = 1024  # sides are probed by doubling up to here, then by binary search
_LARGEST_SCAN = 256  # a net whose head fixes the size (LeNet's flatten) takes only a window: scanned 1 by 1
_min_side_cache: dict[tuple[type, int], int | None] = {}  # None: runs at no size (a broken model)


def min_input_size(model: nn.Module) -> int:
    """The smallest side s for which `model` runs on a [1, in_chans, s, s] input.

    Probed on a meta-device copy (shapes only: no memory, no arithmetic, the model itself untouched) in eval
    mode: the side doubles until the model runs, then a binary search finds the edge. Cached per class and
    architecture (the repr, which shows every layer's kernel, stride and width).
    """
    key = (type(model), hash(repr(model)))
    if key not in _min_side_cache:
        _min_side_cache[key] = _probe_min_side(meta_copy(model))
    side = _min_side_cache[key]
    if side is None:
        name = getattr(model, "model_name", None) or type(model).__name__
        raise CnnlabError(f"{name} runs on no square input of 1 to {_LARGEST_PROBE} pixels")
    return side


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose parameters and buffers are meta tensors of the same shapes and dtypes."""
    if all(tensor.is_meta for tensor in (*model.parameters(), *model.buffers())):
        return model
    # deepcopy looks every object up in `memo` first, so the real tensors are replaced, never copied.
    memo: dict[int, torch.Tensor] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _probe_min_side(model: nn.Module) -> int | None:
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    in_chans = getattr(model, "in_chans", 3)

    def runs_at(side: int) -> bool:
        x = torch.zeros(1, in_chans, side, side, device="meta", dtype=dtype)
        try:
            if isinstance(model, ImageClassifier):  # not model(x): its forward would land back here on failure
                model.forward_head(model.forward_features(x))
            else:
                model(x)
        except NotImplementedError as error:  # an op without a meta kernel says nothing about the size
            raise CnnlabError(f"cannot work out the minimum input of {type(model).__name__}: {error}") from error
        except (RuntimeError, ValueError, CnnlabError):
            return False
        return True

    modes = {module: module.training for module in model.modules()}
    model.eval()  # batch 1 at 1x1 is fine for BatchNorm in eval mode
    try:
        with torch.no_grad():
            return _smallest_true(runs_at)
    finally:
        for module, training in modes.items():
            module.training = training


def _smallest_true(runs_at: Callable[[int], bool]) -> int | None:
    """The smallest side where `runs_at` holds, assuming that past it the model keeps running."""
    high = 1
    while not runs_at(high):
        if high >= _LARGEST_PROBE:
            return next((side for side in range(1, _LARGEST_SCAN + 1) if runs_at(side)), None)
        high *= 2
    low = high // 2  # fails (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        if runs_at(middle):
            high = middle
        else:
            low = middle
    return high
