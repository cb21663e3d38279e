"""console.Progress: a tqdm bar with rate and ETA when stderr is a terminal, log lines every N
seconds in a Dagster run, nothing on a pipe (issue #21)."""

from __future__ import annotations

import io
import sys

from agents_pipeline.console import Progress
from agents_pipeline_tests.terminal import run_with_terminal_stderr


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_log_mode_writes_a_line_every_interval_with_rate_and_eta() -> None:
    clock, lines = Clock(), []
    progress = Progress("archive heartbeats 2025-01-31", total=1000, log=lines.append, every_s=10, clock=clock)
    assert progress.mode == "log"
    clock.now += 5
    progress.update(100)
    assert lines == []                                   # not yet 10 s since the start
    clock.now += 5
    progress.update(100)
    assert lines == ["archive heartbeats 2025-01-31: 200/1,000 rows (20%), 20 rows/s, ETA 0:00:40"]
    clock.now += 3
    progress.update(100)
    assert len(lines) == 1                               # 3 s since the last line
    progress.stage("verify", 300)                        # the export's last line, then the new phase
    assert lines[-1] == "archive heartbeats 2025-01-31: done, 300 rows in 13.0 s (23 rows/s)"
    clock.now += 10
    progress.update(150)
    assert lines[-1] == "archive heartbeats 2025-01-31: verify: 150/300 rows (50%), 15 rows/s, ETA 0:00:10"
    clock.now += 2
    progress.update(150)
    progress.close()
    assert lines[-1] == "archive heartbeats 2025-01-31: verify: done, 300 rows in 12.0 s (25 rows/s)"
    progress.close()                                     # closing twice writes nothing more
    assert len(lines) == 4


def test_log_mode_without_a_total_and_with_a_note() -> None:
    clock, lines = Clock(), []
    with Progress("LangSmith backfill", unit="runs", log=lines.append, every_s=0, clock=clock) as progress:
        progress.stage("crawler")
        progress.note("slice 2/4, ETA 0:00:30")
        clock.now += 2
        progress.update(500)
    assert lines == ["LangSmith backfill: crawler: 500 runs, 250 runs/s, slice 2/4, ETA 0:00:30",
                     "LangSmith backfill: crawler: done, 500 runs in 2.0 s (250 runs/s)"]


def test_nothing_is_written_when_stderr_is_not_a_terminal() -> None:
    """Guards pipes, files and cron: a bar there would fill logs with carriage returns."""
    stream = io.StringIO()
    with Progress("db backup", total=10, stream=stream) as progress:
        progress.stage("dump", 10)
        progress.update(10)
        progress.note("x")
    assert progress.mode == "off" and stream.getvalue() == ""


def test_a_terminal_gets_a_bar_with_rows_per_second_and_eta() -> None:
    code = ("import sys, time\n"
            "from agents_pipeline.console import Progress\n"
            "with Progress('db backup', total=2000) as p:\n"
            "    assert p.mode == 'terminal'\n"
            "    p.stage('dump', 2000)\n"
            "    for _ in range(20):\n"
            "        p.update(100); time.sleep(0.01)\n"
            "print('{\"ok\": true}')\n")
    rc, out, shown = run_with_terminal_stderr([sys.executable, "-c", code], timeout=60)
    assert rc == 0, shown
    assert out == '{"ok": true}\n'                                      # stdout untouched
    assert "db backup: dump" in shown and "2.00k/2.00k" in shown and "100%" in shown
    assert "rows/s" in shown and "<" in shown                           # rate, and elapsed<remaining
