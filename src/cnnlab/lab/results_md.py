"""An experiment's results.md as HTML for the Experiments page, through markdown-it (CommonMark plus tables).

Raw HTML in the file is never passed through (markdown-it's `html` option off: it stays escaped text), and every
image must lie inside the experiment's folder: its src is rewritten to the lab's /files route, and a link that
leaves the folder is refused (`safe_path`) before any HTML is returned.
"""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path
from urllib.parse import quote, unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from cnnlab.lab.security import safe_path

# The page's own <h1> and the card's heading sit above the document: its "#" is an <h2>, and deeper ones stop at h4.
DEEPEST_HEADING = 4
# A table column's alignment ("|---:|") as a class of lab.css: the pages carry no style attributes.
ALIGN_CLASSES = {"text-align:right": "num", "text-align:center": "center"}


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("image", _render_image)
    return md


def _render_image(self, tokens: list[Token], idx: int, options, env: dict) -> str:
    """<img class="plot"> with its src under /files/<experiment>/; a target outside the folder is refused."""
    token = tokens[idx]
    target = str(token.attrGet("src") or "")  # as markdown-it normalised it: percent-encoded
    safe_path(env["folder"], unquote(target))  # LabRequestError (400) for "../x.png", "/etc/x.png", ...
    alt = self.renderInlineAsText(token.children or [], options, env)
    return f'<img class="plot" alt="{escape(alt)}" src="/files/{escape(quote(env["name"]))}/{escape(target)}">'


def _restyle(tokens: list[Token]) -> None:
    """Headings one level down (capped), and table alignment as classes, in place (nested tokens included)."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + 1, DEEPEST_HEADING)}"
        elif token.type in ("th_open", "td_open") and token.attrs.get("style") is not None:
            align = ALIGN_CLASSES.get(str(token.attrs.pop("style")))
            if align:
                token.attrSet("class", align)
        if token.children:
            _restyle(token.children)


def render(folder: Path, name: str, text: str) -> str:
    """`text` (the results.md of the experiment folder `folder`, named `name` under the runs root) as HTML."""
    md = _parser()
    env = {"folder": folder, "name": name}
    tokens = md.parse(text, env)
    _restyle(tokens)
    return md.renderer.render(tokens, md.options, env)
