"""What a markdown string would make live in the Dagster UI: the tests' stand-in for its renderer.

The UI renders markdown metadata and descriptions with react-markdown and remark-gfm. Here
markdown-it (CommonMark with GFM tables) parses, and remark-gfm's second pass is replayed on
the text left after parsing: the two regular expressions of mdast-util-gfm-autolink-literal
in dagster-webserver 1.13's bundle, which link bare URLs, ``www.`` names and addresses.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
LIVE_TOKENS = {"link_open": "link", "image": "image", "html_inline": "raw html", "html_block": "raw html"}


def live_markup(markdown: str) -> list[str]:
    """Links, images, raw HTML and autolinked literals in ``markdown``, as short descriptions."""
    found = []
    for block in RENDERER.parse(markdown):
        if block.type in LIVE_TOKENS:
            found.append(f"{LIVE_TOKENS[block.type]}: {block.content!r}")
        for token in block.children or []:
            if token.type in LIVE_TOKENS:
                found.append(f"{LIVE_TOKENS[token.type]}: {token.content or token.attrs!r}")
            elif token.type == "text" and (GFM_URL.search(token.content) or GFM_EMAIL.search(token.content)):
                found.append(f"autolink literal: {token.content!r}")
    return found


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the tables in ``markdown``, as the text of their cells."""
    rows: list[list[str]] = []
    in_body = False
    for token in RENDERER.parse(markdown):
        if token.type in ("tbody_open", "tbody_close"):
            in_body = token.type == "tbody_open"
        elif in_body and token.type == "tr_open":
            rows.append([])
        elif in_body and token.type == "inline":
            rows[-1].append("".join(child.content for child in token.children or []))
    return rows
