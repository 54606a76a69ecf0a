"""Running inside a Jupyter notebook: telling that we are, an HTML output cnnlab can rewrite in place (the
progress bar), and matplotlib left on the notebook's inline backend there.

Light on purpose (no IPython import at module level): the engine and every plotting module import it.
"""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """Inside a Jupyter kernel, whose output area shows HTML (a terminal IPython has no kernel: it gets rich's bar)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has always loaded it already
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None


def notebook_output():
    """A function that rewrites one HTML output of the running notebook cell (an IPython display handle)."""
    from IPython.display import HTML, display

    handle = display(HTML(""), display_id=True)
    return lambda html: handle.update(HTML(html))


def use_file_backend() -> None:
    """matplotlib on Agg, which draws to files and needs no screen; inside a notebook the inline backend stays, as
    it writes the same files and switching would stop the notebook's own figures showing. cnnlab closes every
    figure it saves, so none of its files' figures appear in the notebook unasked."""
    import matplotlib

    if not in_notebook():
        matplotlib.use("Agg")
