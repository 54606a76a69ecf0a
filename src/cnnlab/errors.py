"""User-facing errors.

A `CnnlabError` is a problem with the user's input or environment (an unknown name, missing data, a bad
number). The CLI prints its message as one line on stderr and exits with code 2, without a traceback.
Anything else that escapes is a bug in cnnlab and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnlabError(Exception):
    """An error the user can fix; its message is complete on one line."""


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
