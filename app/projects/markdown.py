"""Guidelines are Markdown written by admins; rendered with raw HTML disabled."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

# "html": False escapes any raw HTML in the source; markdown-it also refuses javascript:,
# vbscript: and data: link targets by default.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    # Safe: with html disabled the renderer escapes all raw input.
    return Markup(_md.render(text))
