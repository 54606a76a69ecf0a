"""Which pictures `visualize` can draw, and the --show parsing: plain Python, so the CLI's parser imports no torch."""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.errors import CnnlabError

SHOWS = ("filters", "featuremaps", "gradcam", "saliency", "erf")
PER_IMAGE = ("featuremaps", "gradcam", "saliency")  # these need images
DEFAULT_SHOW = ("filters", "featuremaps", "gradcam", "saliency")


def parse_show(show: str | Sequence[str] | None, have_images: bool) -> list[str]:
    """The pictures to draw. None: all four with images, the filters alone without."""
    if show is None:
        return list(DEFAULT_SHOW) if have_images else ["filters"]
    names = [part.strip() for part in (show.split(",") if isinstance(show, str) else show) if part.strip()]
    unknown = [name for name in names if name not in SHOWS]
    if unknown or not names:
        raise CnnlabError(f"unknown --show '{','.join(unknown) or show}'; choose from: {','.join(SHOWS)}")
    needing = [name for name in names if name in PER_IMAGE]
    if needing and not have_images:
        raise CnnlabError(f"--show {','.join(needing)} needs images: pass image files or --from-test N")
    return names
