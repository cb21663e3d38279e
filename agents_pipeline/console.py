"""Printing helpers shared by the commands: JSON for machines, aligned text for people, and
the progress of long work (on a terminal, or in a Dagster run's log)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, bytes | memoryview):
        return bytes(obj).hex()
    return str(obj)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, default=_default, indent=2)
    sys.stdout.write("\n")


def ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    secs = (now - ts).total_seconds()
    if secs < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} ago"
    return f"{secs:.0f}s ago"


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


class Progress:
    """The progress of one long piece of work (an archival, a restore, a backup, a LangSmith
    backfill), shown wherever someone is watching, never on stdout:

    - ``log`` given (a Dagster run passes ``context.log.info``): a line every ``every_s`` seconds
      and one at the end, with the count, the total, the rate and the time left;
    - otherwise, when ``stream`` (stderr) is a terminal: a tqdm bar with rows/s and ETA;
    - otherwise (a pipe, a file, cron): nothing, so logs and ``--json`` stay clean.

    The work reports with ``update(n)``; ``stage(name, total)`` starts a new phase of it (the
    export, then the verify) with its own count. tqdm draws the bar (a well-kept library);
    only the log lines, which tqdm does not do, are written here.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "rows", *,
                 log: Callable[[str], None] | None = None, every_s: float = 10.0,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.unit, self.every_s, self._log, self._clock = desc, unit, every_s, log, clock
        self.total, self.done = total, 0
        self._stage = self._note = ""
        self._started = self._last_log = clock()
        self._bar = None
        self._stream = stream if stream is not None else sys.stderr
        if log is None and _is_terminal(self._stream):
            self._bar = self._new_bar(desc, total)

    def _new_bar(self, desc: str, total: int | None):
        from tqdm import tqdm  # imported only when drawn: the heartbeat path never pays for it

        return tqdm(total=total, desc=desc, unit=self.unit, unit_scale=True, file=self._stream, dynamic_ncols=True)

    @property
    def mode(self) -> str:
        """``log``, ``terminal`` or ``off``."""
        return "log" if self._log is not None else "terminal" if self._bar is not None else "off"

    def stage(self, name: str, total: int | None = None) -> None:
        """Starts a new phase of the work: its own count from 0 to ``total``."""
        if self._log is not None and self.done:
            self._emit(final=True)
        self._stage, self.total, self.done, self._note = name, total, 0, ""
        self._started = self._last_log = self._clock()
        if self._bar is not None:   # the finished phase keeps its line; the new one gets a bar
            if self._bar.n:
                self._bar.close()
            else:
                self._bar.leave = False
                self._bar.close()
            self._bar = self._new_bar(f"{self.desc}: {name}" if name else self.desc, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log is not None and self._clock() - self._last_log >= self.every_s:
            self._emit()

    def note(self, text: str) -> None:
        """A short note beside the count, e.g. ``slice 3/24, ETA 0:01:10`` where the work's own
        position, not its row count, tells the time left (a LangSmith backfill)."""
        self._note = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._log is not None:
            self._emit(final=True)
            self._log = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, final: bool = False) -> str:
        """The log line: ``desc: stage: 1,200/5,000 rows (24%), 400 rows/s, ETA 0:00:10``."""
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed
        name = f"{self.desc}: {self._stage}" if self._stage else self.desc
        if final:
            return f"{name}: done, {self.done:,} {self.unit} in {elapsed:.1f} s ({rate:,.0f} {self.unit}/s)"
        count = f"{self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)" \
            if self.total else f"{self.done:,} {self.unit}"
        eta = ""
        if self.total and rate > 0 and self.done < self.total:
            eta = f", ETA {timedelta(seconds=round((self.total - self.done) / rate))}"
        return f"{name}: {count}, {rate:,.0f} {self.unit}/s{eta}" + (f", {self._note}" if self._note else "")

    def _emit(self, final: bool = False) -> None:
        if self._log is not None:
            self._log(self.line(final))
        self._last_log = self._clock()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
