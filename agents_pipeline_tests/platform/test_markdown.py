"""escape_md against hostile text, judged by the tests' stand-in for the UI's markdown renderer
(markdown_oracle: CommonMark with GFM tables, plus remark-gfm's autolinking of bare URLs)."""

from __future__ import annotations

import html
import re

import pytest

from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE, escape_md
from agents_pipeline_tests.markdown_oracle import GFM_EMAIL, GFM_URL, RENDERER

HOSTILE = [
    "[click](http://evil)",
    "![x](http://evil/img.png)",
    "<img src=x>",
    "a|b",
    "line\nbreak",
    "http://evil.example",
    "https://evil.example/login?next=/",
    "www.evil.example",
    "ops@evil.example",
    "<http://evil.example>",
    "[fix it][1]\n\n[1]: http://evil",
    "&#91;x&#93;(http://evil)",
    "`code` **bold** _em_ ~~gone~~",
    "# heading\n> quote\n- item\n1. one",
    "<script>alert(1)</script>",
    "\\|b \\[x](http://evil)",
    "x\r\n| forged | row |\u2028[y](http://evil)",
]


TABLE = re.compile(r"<table>\n<thead>\n.*?</thead>\n<tbody>\n<tr>\n<td>agent</td>\n<td>(.*?)</td>\n</tr>\n"
                   r"</tbody>\n</table>\n", re.DOTALL)


def _rendered_cell(cell: str) -> tuple[str | None, str]:
    """(the message cell's HTML, or None when the text broke out of its cell; the whole HTML)."""
    rendered = RENDERER.render(f"| name | message |\n|---|---|\n| agent | {cell} |\n")
    match = TABLE.fullmatch(rendered)
    return (match.group(1) if match else None), rendered


def _damage(cell: str, original: str) -> list[str]:
    """What the markdown ``cell`` does in the UI beyond showing ``original`` on one line."""
    html_cell, rendered = _rendered_cell(cell)
    if html_cell is None:
        return [f"left its table cell: {rendered!r}"]
    found = []
    if "<a " in html_cell or "<img" in html_cell:
        found.append("link or image")
    if "<" in html_cell:
        found.append("markup")
    text = html.unescape(html_cell)
    if GFM_URL.search(text) or GFM_EMAIL.search(text):
        found.append("autolink literal")
    if text.replace(ZERO_WIDTH_SPACE, "") != " ".join(original.split()):
        found.append(f"shows {text!r}")
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_the_literal_text(text):
    assert _damage(escape_md(text), text) == []


@pytest.mark.parametrize("text", HOSTILE)
def test_each_hostile_text_does_damage_unescaped(text):
    """Guards the oracle: every input above does damage unescaped, so the test above means something."""
    assert _damage(text, text) != []


def test_snake_case_and_dates_stay_readable_in_the_raw_markdown():
    assert escape_md("nightly_job") == "nightly_job"
    assert escape_md("job:nightly_job") == "job:nightly_job"
    assert escape_md("gpt-4o 2026-01-01 12:00") == "gpt-4o 2026-01-01 12:00"
    assert escape_md("_private") == "\\_private"


def test_limit_cuts_the_text_before_escaping():
    """Regression: cutting after escaping could leave a lone backslash in front of the cell's pipe."""
    assert escape_md("abcdefghij", limit=5) == "abcd…"
    assert escape_md("aaa|bbbb", limit=5) == "aaa\\|…"
    assert escape_md("[" * 10, limit=4) == "\\[\\[\\[…"


def test_none_and_non_strings():
    assert escape_md(None) == ""
    assert escape_md(42) == "42"
    assert escape_md("  spaced\t\tout  ") == "spaced out"
