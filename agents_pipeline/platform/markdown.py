"""Escaping for text the fleet controls that ends up in markdown the Dagster UI renders.

The 1.13 UI renders ``MetadataValue.md`` and the descriptions of materializations and
asset-check results with react-markdown, remark-gfm and rehype-sanitize
(ui-core/src/ui/MarkdownWithPlugins.tsx in dagster-webserver's bundle). Sanitizing removes
scripts but keeps links and images to http(s) and ``data:`` URLs, and remark-gfm turns bare
URLs, ``www.`` names and e-mail addresses into links. So an agent's status message, a legacy
table name or a help question could put a phishing link or a tracking image in front of an
operator, or break a table, unless it passes through ``escape_md``.

A leaf module: it imports nothing of the project, so any layer may use it.
"""

from __future__ import annotations

import re

# ASCII punctuation that starts or ends inline markdown (links, images, emphasis, code, raw
# HTML and autolinks, entities, strikethrough, headings, table cells). A backslash before
# ASCII punctuation always renders as the character itself.
_SPECIAL = re.compile(r"_+|[\\`*\[\]()!<>#|~&]")
# A list marker at the start would open a nested list inside a list item.
_LIST_MARKER = re.compile(r"^(\d{0,9})([-+.])(?= |$)")
# remark-gfm links the literals ``http://``, ``https://``, ``www.`` and ``name@domain`` whatever
# the backslashes around them (its tokenizer takes a backslash into the URL; its second pass
# reads the text left after unescaping), so a zero-width space goes where a literal would
# match: before ``://``, after ``www``, before ``@``. The browser test checks it in the real UI.
_LINK_LITERAL = re.compile(r"(?=://)|(?<=[wW]{3})(?=\.)|(?=@)")
ZERO_WIDTH_SPACE = "\u200b"


def _escape_special(match: re.Match[str]) -> str:
    run = match.group(0)
    if run[0] != "_":
        return "\\" + run
    # An underscore run between two letters or digits never opens or closes emphasis, so
    # snake_case names stay readable in the raw markdown.
    text, start, end = match.string, match.start(), match.end()
    if start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
        return run
    return "\\_" * len(run)


def escape_md(text: object, limit: int | None = None) -> str:
    """``text`` as literal inline markdown: one line, no live links, images, HTML or cell breaks.

    Whitespace runs (newlines included) become one space, so the result is safe inside a
    table cell or a list item. ``limit`` cuts the plain text (with an ellipsis) before
    escaping, so an escape sequence is never cut in half. None gives the empty string.
    """
    if text is None:
        return ""
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: max(limit - 1, 0)] + "…"
    escaped = _SPECIAL.sub(_escape_special, flat)
    escaped = _LIST_MARKER.sub(r"\1\\\2", escaped)
    return _LINK_LITERAL.sub(ZERO_WIDTH_SPACE, escaped)
