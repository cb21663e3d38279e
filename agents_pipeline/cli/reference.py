"""Writes docs/cli.md, the command reference, from the parser itself, so that it cannot drift:
``python -m agents_pipeline.cli.reference`` (``make cli-docs``) rewrites it, ``--check`` exits 1
when it differs (a test runs the same comparison in CI).

Each command's section is its own ``-h`` text at a fixed width of 100 columns, so the reference
reads exactly as the terminal does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from agents_pipeline.cli.conventions import EXIT_CODES_TEXT

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
WIDTH = 100

HEADER = """# `agents-pipeline` command reference

Generated from the parser by `make cli-docs` (`python -m agents_pipeline.cli.reference`); a test
fails when this file and the parser differ, so edit the commands' help, not this file.

Conventions every command follows (`agents_pipeline/cli/conventions.py`):

- `-h` on every command, with at least one example;
- `--json` on every command that acts: one JSON document on stdout, on failure too once the
  arguments parsed (`{{"ok": false, "exit_code": 2, "error": "..."}}`); servers (`api`, `dev`, `demo-fleet`) and
  commands whose output is a shell value (`db url`, `db env`) have none;
- logs, warnings and progress bars go to stderr; a progress bar (rows/s, ETA) is drawn only when
  stderr is a terminal; in Dagster runs the same progress is a log line every 10 seconds;
- exit codes:

```text
{exit_codes}
```
"""


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(full command, parser) for every command below ``parser``, depth first, in parser order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield child.prog, child
                yield from subcommands(child)


def _help(parser: argparse.ArgumentParser) -> str:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)   # argparse wraps to the terminal's width: fix it
    try:
        return parser.format_help().rstrip()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _anchor(prog: str) -> str:
    return prog.replace(" ", "-").lower()


def render() -> str:
    from agents_pipeline.cli.main import build_parser

    root = build_parser()
    commands = list(subcommands(root))
    lines = [HEADER.format(exit_codes=EXIT_CODES_TEXT.split("\n", 1)[1]).rstrip(), "", "## Commands", ""]
    for prog, _ in commands:
        depth = prog.count(" ") - 1
        lines.append(f"{'  ' * depth}- [`{prog}`](#{_anchor(prog)})")
    for prog, parser in [(root.prog, root), *commands]:
        lines += ["", f"## {prog}", "", "```text", _help(parser), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents_pipeline.cli.reference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md differs from the parser")
    ap.add_argument("--output", type=Path, default=DOC, help=f"where to write (default {DOC})")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} does not match the parser: run `make cli-docs`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
