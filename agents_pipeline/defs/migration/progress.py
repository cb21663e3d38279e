"""Progress of a migration, per table: bars on a terminal, log lines in a Dagster run.

The loaders only call ``update(table, rows)``; what the operator sees depends on where the run
is: tqdm bars (rows/s and ETA) on stderr when it is a terminal, one log line per table every
few seconds in a Dagster run (whose log shows each line), nothing otherwise. tqdm rather than a
hand-written bar: it handles terminal widths, several bars at once and rate smoothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Progress:
    """Reports nothing; the interface the loaders call."""

    def start(self, table: str, total: int | None) -> None:
        pass

    def update(self, table: str, rows: int) -> None:
        pass

    def finish(self, table: str) -> None:
        pass


class BarProgress(Progress):
    """One tqdm bar per table on ``stream`` (stderr), side-by-side tables on their own lines."""

    def __init__(self, stream) -> None:
        self.stream, self._bars, self._lock = stream, {}, threading.Lock()

    def start(self, table: str, total: int | None) -> None:
        from tqdm import tqdm

        with self._lock:
            self._bars[table] = tqdm(total=total, desc=table, unit=" rows", unit_scale=True, file=self.stream,
                                     position=len(self._bars), leave=True, dynamic_ncols=True)

    def update(self, table: str, rows: int) -> None:
        with self._lock:
            if table in self._bars:
                self._bars[table].update(rows)

    def finish(self, table: str) -> None:
        with self._lock:
            bar = self._bars.get(table)
            if bar is not None and not bar.disable:
                if bar.total and bar.n < bar.total:   # rowids with gaps: the table is done all the same
                    bar.total = bar.n
                    bar.refresh()
                bar.close()


class LogProgress(Progress):
    """A line per table at most every ``every_s`` seconds, and one when it is done."""

    def __init__(self, log: Callable[[str], None], every_s: float = 10.0) -> None:
        self.log, self.every_s = log, every_s
        self._state: dict[str, list] = {}   # table -> [total, done, started, last logged]
        self._lock = threading.Lock()

    def start(self, table: str, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._state[table] = [total, 0, now, now]

    def update(self, table: str, rows: int) -> None:
        with self._lock:
            state = self._state.get(table)
            if state is None:
                return
            state[1] += rows
            now = time.monotonic()
            if now - state[3] < self.every_s:
                return
            state[3] = now
            line = self._line(table, state, now)
        self.log(line)

    def finish(self, table: str) -> None:
        with self._lock:
            state = self._state.pop(table, None)
        if state is not None:
            total, done, started, _ = state
            self.log(f"{table}: {done:,} rows in {time.monotonic() - started:.1f} s, done")

    @staticmethod
    def _line(table: str, state: list, now: float) -> str:
        total, done, started, _ = state
        rate = done / max(now - started, 1e-9)
        if total:
            left = max(total - done, 0)
            eta = f", ETA {left / rate:.0f} s" if rate > 0 else ""
            return f"{table}: {done:,} / ~{total:,} rows ({min(done / total, 1):.0%}), {rate:,.0f} rows/s{eta}"
        return f"{table}: {done:,} rows, {rate:,.0f} rows/s"
