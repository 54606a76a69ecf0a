"""User-facing errors.

A `CnnlabError` is a problem with the user's input or environment (an unknown name, missing data, a bad
number). The CLI prints its message as one line on stderr and exits with code 2, without a traceback.
Anything else that escapes is a bug in cnnlab and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnlabError(Exception):
    """An error the user can fix; its message is complete on one line.

    It pickles with the arguments it was made with, so a subclass whose __init__ takes its own (an option and a
    problem, a path) crosses a process boundary intact: a sweep trial or a bench worker raising one reaches its
    parent as itself, not as a TypeError from pickle calling __init__ with the message alone."""

    def __new__(cls, *args, **kwargs):
        error = super().__new__(cls, *args)
        error._made_with = (args, kwargs)
        return error

    def __reduce__(self):
        args, kwargs = self._made_with
        state = {k: v for k, v in self.__dict__.items() if k != "_made_with"}
        return (_remake, (type(self), args, kwargs), state)


def _remake(cls: type, args: tuple, kwargs: dict) -> CnnlabError:
    return cls(*args, **kwargs)


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The up to `n` candidates closest to `name`, best first (for "did you mean" hints)."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    # Names that merely share a prefix ("resnet" -> "resnet18") rank after the fuzzy matches.
    prefixed = [c for c in candidates if c.lower().startswith(name.lower()) and c.lower() not in matches]
    return ([lowered[m] for m in matches] + prefixed)[:n]


def unknown_name_error(kind: str, name: str, candidates: Iterable[str]) -> CnnlabError:
    """`unknown model 'resnt18'; did you mean: resnet18, resnet34?` with the closest names listed."""
    candidates = list(candidates)
    hints = closest(name, candidates)
    if hints:
        return CnnlabError(f"unknown {kind} '{name}'; did you mean: {', '.join(hints)}?")
    return CnnlabError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(candidates))}")


class ResumeConflictError(CnnlabError):
    """An option given with --resume that differs from the run's own value and cannot change mid-run (see
    `cnnlab.engine.config.resume_config`). `option` is the TrainConfig field; `saved` the run's value."""

    def __init__(self, option: str, saved: object, given: object, reason: str | None = None) -> None:
        self.option, self.saved, self.given = option, saved, given
        flag = "--" + option.replace("_", "-")

        def shown(value: object) -> str:  # a boolean as the flag that sets it
            return (flag if value else f"--no-{flag[2:]}") if isinstance(value, bool) else str(value)

        super().__init__(
            reason
            or f"{flag} cannot change on --resume: the run trained with {shown(saved)}, got "
            f"{shown(given)} (start a new run instead)"
        )


# ------------------------------------------------------------------------------------ typed errors and warnings
# Callers branch on these types and read their attributes; none of them parses a message.


class RunFileError(CnnlabError):
    """A file of a run directory (config.json, results.json, metrics.csv, ...) that cannot be read as its schema
    says: `path` is the file, `problem` the rest of the sentence ("does not exist", "has no 'model'")."""

    def __init__(self, path: object, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path} {problem}")


class RunFileMissing(RunFileError):
    """The file is not there (a run that has not got that far, or no run at all)."""

    def __init__(self, path: object) -> None:
        super().__init__(path, "does not exist")


class NotARunDirectory(CnnlabError):
    """A folder that holds neither a training run nor an experiment where one was asked for: `path` is the folder,
    `reason` why it is none ("does not exist", "holds no config.json", "is an experiment's folder, ...")."""

    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"run directory {path} {reason}")


class OptionValueError(CnnlabError):
    """A bad value for one named option. The CLI says it with the flag ("--input must look like 3x224x224 ..."),
    the lab with the field's label on its page ("Input size must look like ..."). `option` is the option's name,
    `problem` the sentence after it."""

    def __init__(self, option: str, problem: str) -> None:
        self.option, self.problem = option, problem
        super().__init__(f"--{option.replace('_', '-')} {problem}")


class BatchNormBatchTooSmall(CnnlabError):
    """A batch-norm layer in training mode would get one value per channel (one image per process at a 1x1 map),
    too few for batch statistics; found before the first forward pass."""

    def __init__(self, model: str, batch_size: int, processes: int, layer: str, values_per_image: int) -> None:
        self.model, self.batch_size, self.processes = model, batch_size, processes
        self.layer, self.values_per_image = layer, values_per_image
        per_process = " per process" if processes > 1 else ""
        super().__init__(
            f"{model} cannot train with --batch-size {batch_size}: a batch-norm layer gets one value per "
            f"channel (a 1x1 feature map of one image{per_process}), too few for batch statistics; use "
            f"--batch-size {2 * processes} or more"
        )


class NonFiniteLoss(CnnlabError):
    """Training diverged: the loss (`quantity` "loss"), or with a finite loss a gradient ("gradient"), became inf
    or NaN at 1-based `epoch` and `step` (the step within the epoch). `loss` is that step's loss value (inf/NaN, or
    the finite loss whose gradient overflowed), `lr` the run's peak lr, `metrics` the epoch rows completed before
    it. The run's results.json says "failed"; its checkpoints are kept as they were."""

    def __init__(
        self, quantity: str, epoch: int, step: int, loss: float, lr: float, kept: str, metrics: list[dict]
    ) -> None:
        self.quantity, self.epoch, self.step, self.loss, self.lr = quantity, epoch, step, loss, lr
        self.metrics = list(metrics)
        what = f"the loss became {loss}" if quantity == "loss" else "a gradient became non-finite"
        super().__init__(f"{what} at epoch {epoch}, step {step}; {kept}; try a lower --lr (now {lr:g})")


class UnsafePickleError(CnnlabError):
    """A pickle that would run code if fully unpickled: torch's weights-only loader refuses it. `globals` names
    the callables it holds (e.g. ["posix.system"]) where they were read from its opcodes before anything was
    unpickled (torch.save archives); [] where the weights-only unpickler itself refused it (plain pickles)."""

    def __init__(self, label: str, globals: list[str], advice: str) -> None:
        self.label, self.globals = label, list(globals)
        named = f" ({', '.join(self.globals)})" if self.globals else ""
        super().__init__(f"{label} holds pickled code{named}, which cnnlab refuses to unpickle for safety; {advice}")


class PluginLoadWarning(UserWarning):
    """A package's `cnnlab.models` entry point failed to import; its models are missing from the zoo."""

    def __init__(self, name: str, target: str, error: BaseException) -> None:
        self.name, self.target, self.error = name, target, error
        super().__init__(
            f"the cnnlab.models entry point '{name}' ({target}) failed to load, its models are left out: "
            f"{type(error).__name__}: {error}"
        )


class SeedReusedWarning(UserWarning):
    """A repeated experiment found `seed`'s folder already finished by the same experiment with the same options
    (an interrupted `--seeds` run, run again) and reads its results instead of training it again."""

    def __init__(self, seed: int, folder: str) -> None:
        self.seed, self.folder = seed, folder
        super().__init__(
            f"seed {seed}: reusing the finished results in {folder} (same experiment and options); "
            "delete that folder to run the seed again"
        )


class HeadMismatchWarning(UserWarning):
    """A checkpoint's classifier has another number of classes than the model (`checkpoint_classes` vs
    `model_classes`): the model keeps its freshly initialised head (`keys`), the rest of the file loads."""

    def __init__(self, path: str, checkpoint_classes: int, model_classes: int, keys: list[str]) -> None:
        self.path, self.keys = path, keys
        self.checkpoint_classes, self.model_classes = checkpoint_classes, model_classes
        super().__init__(
            f"{path}: the checkpoint's head has {checkpoint_classes} classes, the model {model_classes}; "
            f"keeping a freshly initialised {', '.join(keys)}"
        )
