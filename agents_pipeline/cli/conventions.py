"""The conventions every ``agents-pipeline`` command follows (issue #21), in one place so that a
new command gets them by using these helpers and `agents_pipeline_tests/core/test_cli_conventions.py`
catches one that does not:

- help text and at least one example on every command (``add_command``);
- ``--json`` on every command that acts: one JSON document on stdout (``add_json``);
- exit 0 when it did its work, 1 when it ran and a check or verification found problems, 2 when
  it could not run (bad input, missing setting, database unreachable; argparse's own errors
  are 2 as well): ``exit_code`` maps an exception to its code, the handlers return 0 or 1;
- logs, warnings and progress on stderr, so that stdout holds only the result.

Imports only argparse and the standard library at module level: `agents-pipeline heartbeat`
builds the whole parser and must start fast.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Sequence

OK = 0
PROBLEMS = 1      # the command ran, and what it checked or verified did not hold
CANNOT_RUN = 2    # bad input, a missing setting, the database or a service unreachable
INTERRUPTED = 130

EXIT_CODES_TEXT = """exit codes:
  0  done
  1  the command ran, and a check or verification found problems
  2  the command could not run: bad input, a missing setting, the database unreachable"""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose as argparse does, but keeps indented lines (examples) exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                out.append(textwrap.fill(" ".join(prose), width, initial_indent=indent, subsequent_indent=indent))
                prose.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                out.append("")
            elif line.startswith(" ") or line.rstrip().endswith(":"):
                flush()
                out.append(indent + line)
            else:
                prose.append(line.strip())
        flush()
        return "\n".join(out)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-parsers (made with ``type(self)``) share ``HelpFormatter``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def examples_epilog(examples: Sequence[str]) -> str:
    """The epilog every command carries: ``examples:`` then one indented command line each."""
    if not examples or not all("agents-pipeline " in e for e in examples):
        raise ValueError("every command needs at least one example, each an `agents-pipeline ...` line")
    return ("example:\n" if len(examples) == 1 else "examples:\n") + "\n".join(f"  {e}" for e in examples)


def add_command(sub: argparse._SubParsersAction, name: str, summary: str, examples: Sequence[str] | str,
                description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """A sub-command with its one-line ``summary`` (shown in the parent's list), a ``description``
    (its own ``-h``; the summary when not given) and its examples."""
    examples = [examples] if isinstance(examples, str) else list(examples)
    text = description or (summary[:1].upper() + summary[1:] + ("" if summary.endswith(".") else "."))
    return sub.add_parser(name, help=summary, description=text, epilog=examples_epilog(examples), **kwargs)


def add_json(parser: argparse.ArgumentParser, help: str = "print the result as one JSON document on stdout") -> None:
    parser.add_argument("--json", action="store_true", help=help)


class PackageVersion(argparse.Action):
    """``--version``: read from the installed package's metadata only when asked (it costs a
    scan of site-packages, which `heartbeat` must not pay)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the installed version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("agents_pipeline")
        except PackageNotFoundError:   # run from a source tree that was never installed
            from agents_pipeline import __version__ as found
        print(f"{parser.prog} {found}")   # stdout, as argparse's own version action
        parser.exit()


def exit_code(exc: BaseException) -> int:
    """The exit code of a command that ended with ``exc``: 1 when a verification failed, 130 on
    Ctrl-C, 2 for everything else (the command could not do its work)."""
    from agents_pipeline.core.errors import VerificationFailed

    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, VerificationFailed):
        return PROBLEMS
    return CANNOT_RUN


def one_line(exc: BaseException) -> str:
    """The error as one line, with any connection URL's password masked: a driver's error
    (psycopg2's "connection ... failed" runs over several lines; SQLAlchemy's adds a link and
    the statement) shows its own message only."""
    from agents_pipeline.core.dsn import mask_url

    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper around the driver's error
    text = str(orig if isinstance(orig, BaseException) else exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = "; ".join(lines) or type(exc).__name__
    message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)
    if type(exc).__name__ == "OperationalError" or isinstance(orig, BaseException) and \
            type(orig).__name__ == "OperationalError":
        message = f"database unreachable or refused the connection: {message}"
    return mask_url(message)
