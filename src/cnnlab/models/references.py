"""A learner's own network: `path/to/file.py:Name` or `package.module:Name`, checked before anything trains.

    ref = parse_reference("my_cnn.py:MyCNN")          # ModelReference(kind="file", ...)
    model = build_from_reference(ref, num_classes=10, in_chans=1)
    check_model(model, (1, 28, 28), num_classes=10)   # one guarded forward pass; one-line errors

`Name` is an `nn.Module` subclass or a function that returns one. cnnlab passes `num_classes` and `in_chans` when
its signature takes them (or takes **kwargs), and nothing otherwise. Building from a reference imports the file,
which runs its code: callers decide first whether that code may run (`cnnlab.models.trust`).

Every failure is a typed `ModelReferenceError` with one line: the file is missing, the name is missing (with the
modules and functions the file does have), an import error (its first line, with file:line), not an nn.Module, a
forward error (the layer and the input shape where it failed), or an output of the wrong shape.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError

# "a/b.py:Name", "b.py:Name" and "pkg.mod:Name"; a Windows drive letter ("C:\x.py:Name") splits at the last colon.
_REFERENCE = re.compile(r"^(?P<target>.+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PACKAGE = str(Path(__file__).resolve().parents[1])  # cnnlab's own frames are not where the user's error is
_TORCH = str(Path(torch.__file__).resolve().parent)  # nor torch's: the user's call into it is


class ModelReferenceError(CnnlabError):
    """A network from a file or module that cannot be used; `reference` is what the user wrote."""

    def __init__(self, reference: str, problem: str) -> None:
        self.reference, self.problem = reference, problem
        super().__init__(f"{reference}: {problem}")


@dataclass(frozen=True)
class ModelReference:
    text: str  # as the user wrote it: "nets/my_cnn.py:MyCNN" or "mypkg.nets:MyCNN"
    kind: str  # "file" or "module"
    target: str  # the file's path, or the module's dotted name
    name: str  # the class or function in it

    @property
    def path(self) -> Path | None:
        return Path(self.target) if self.kind == "file" else None


def is_reference(text: str) -> bool:
    """Whether `text` names a network in code (`x.py:Name`, `pkg.mod:Name`) rather than a zoo model or a spec."""
    match = _REFERENCE.match(text.strip())
    if match is None or " " in match["target"] or ";" in text:
        return False
    target = match["target"]
    return target.endswith(".py") or bool(_MODULE.match(target))


def parse_reference(text: str) -> ModelReference:
    text = text.strip()
    match = _REFERENCE.match(text)
    if match is None or not is_reference(text):
        raise ModelReferenceError(text, "a network in code is named path/to/file.py:Name or package.module:Name")
    target = match["target"]
    kind = "file" if target.endswith(".py") else "module"
    return ModelReference(text, kind, target, match["name"])


def source_sha256(reference: ModelReference) -> str:
    """SHA-256 of the source file that defines the network (the file itself, or the module's file)."""
    return hashlib.sha256(source_file(reference).read_bytes()).hexdigest()


def source_file(reference: ModelReference) -> Path:
    if reference.kind == "file":
        path = Path(reference.target)
        if not path.is_file():
            raise ModelReferenceError(reference.text, f"no file {path} (from {Path.cwd()})")
        return path
    spec = importlib.util.find_spec(reference.target.split(".")[0])
    if spec is None:
        raise ModelReferenceError(reference.text, f"no module {reference.target} on the Python path")
    module = _import(reference)
    return Path(inspect.getsourcefile(module) or module.__file__)


def _import(reference: ModelReference):
    """Import the file or module (this runs its code); an import error becomes one line with file:line."""
    try:
        if reference.kind == "module":
            return importlib.import_module(reference.target)
        path = source_file(reference).resolve()
        name = f"cnnlab_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        return module
    except ModelReferenceError:
        raise
    except Exception as error:  # the user's code: any exception is theirs to fix, reported in one line
        raise ModelReferenceError(reference.text, f"importing it failed: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    """`file.py:12: NameError: name 'nn' is not defined`, at the deepest frame in the user's code."""
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{error.filename}:{error.lineno}: "
    else:
        user = [f for f in frames if "importlib" not in f.filename and not f.filename.startswith((_PACKAGE, _TORCH))]
        where = f"{user[-1].filename}:{user[-1].lineno}: " if user else ""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{where}{type(error).__name__}: {message}".rstrip(": ")


def _candidates(module) -> list[str]:
    """The nn.Module classes and the functions a module defines itself (not the ones it imports)."""
    own = [
        name
        for name, value in vars(module).items()
        if getattr(value, "__module__", None) == module.__name__ and not name.startswith("_")
    ]
    return sorted(n for n in own if inspect.isfunction(vars(module)[n]) or _is_module_class(vars(module)[n]))


def network_names(path: str | Path) -> list[str]:
    """The nn.Module classes and the functions a Python file defines (imports it: this runs its code)."""
    return _candidates(_import(parse_reference(f"{path}:_")))


def _is_module_class(value) -> bool:
    return inspect.isclass(value) and issubclass(value, nn.Module)


def resolve(reference: ModelReference):
    """The class or function the reference names (imports it)."""
    module = _import(reference)
    found = getattr(module, reference.name, None)
    if found is None:
        names = ", ".join(_candidates(module)) or "no nn.Module class or function"
        raise ModelReferenceError(reference.text, f"no '{reference.name}' in it; it defines: {names}")
    if not (_is_module_class(found) or callable(found)):
        raise ModelReferenceError(reference.text, f"'{reference.name}' is a {type(found).__name__}, not an nn.Module")
    return found


def build_from_reference(reference: ModelReference, num_classes: int | None, in_chans: int) -> nn.Module:
    """Call the class or function with the arguments its signature takes; the result must be an nn.Module.
    `num_classes` None: the factory's own default (a summary, with no dataset to count classes)."""
    factory = resolve(reference)
    offered = {"in_chans": in_chans} if num_classes is None else {"num_classes": num_classes, "in_chans": in_chans}
    kwargs = _arguments(factory, **offered)
    try:
        model = factory(**kwargs)
    except Exception as error:  # the user's constructor
        raise ModelReferenceError(reference.text, f"building it failed: {_first_line(error)}") from None
    if not isinstance(model, nn.Module):
        what = type(model).__name__
        raise ModelReferenceError(reference.text, f"'{reference.name}' returned a {what}, not an nn.Module")
    return model


def _arguments(factory, **offered) -> dict:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: offer nothing
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(offered)
    names = {p.name for p in parameters}
    return {k: v for k, v in offered.items() if k in names}


def constructor_arguments(reference: ModelReference, num_classes: int, in_chans: int) -> dict:
    """What `build_from_reference` passes, for the run's config.json."""
    return _arguments(resolve(reference), num_classes=num_classes, in_chans=in_chans)


def check_model(model: nn.Module, input_shape: tuple[int, int, int], num_classes: int | None, label: str = "") -> None:
    """One forward pass of two blank images in eval mode: a failure names the layer and the shape it got; the
    output must be [N, num_classes] (None: any [N, K], the network's own class count). The model's mode is
    restored."""
    label = label or type(model).__name__
    trail = _LayerTrail(model)
    was_training = model.training
    x = torch.zeros(2, *input_shape, device=next(model.parameters(), torch.zeros(0)).device)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as error:  # the user's forward
        layer, shape = trail.failed_at()
        where = f" in layer '{layer}' (input {shape})" if layer else ""
        raise ModelReferenceError(label, f"the forward pass failed{where}: {_first_line(error)}") from None
    finally:
        trail.remove()
        model.train(was_training)
    classes = num_classes if num_classes is not None else (out.shape[-1] if isinstance(out, torch.Tensor) else 0)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, classes):
        got = f"[{', '.join(map(str, out.shape))}]" if isinstance(out, torch.Tensor) else type(out).__name__
        wanted = f"[N, num_classes] = [2, {num_classes}]" if num_classes is not None else "[N, classes]"
        raise ModelReferenceError(label, f"the output is {got} for 2 images; it must be {wanted}")


class _LayerTrail:
    """Which layers a forward pass entered and has not left: on an exception, the innermost is where it failed.

    Only the model's own modules count: a copy of it (the meta-device copy that `min_input_size` probes after a
    failed pass) carries the same hooks, and its probe passes must not move the trail."""

    def __init__(self, model: nn.Module) -> None:
        self.open: list[tuple[str, str]] = []
        self.handles = []
        for name, module in model.named_modules():
            if name:
                self.handles.append(module.register_forward_pre_hook(self._enter(name, module)))
                self.handles.append(module.register_forward_hook(self._leave(module)))

    def _enter(self, name: str, own: nn.Module):
        def hook(module, args):
            if module is own:
                shape = "x".join(map(str, args[0].shape)) if args and isinstance(args[0], torch.Tensor) else "?"
                self.open.append((name, shape))

        return hook

    def _leave(self, own: nn.Module):
        def hook(module, args, output):
            if module is own and self.open:
                self.open.pop()

        return hook

    def failed_at(self) -> tuple[str, str]:
        return self.open[-1] if self.open else ("", "")

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
