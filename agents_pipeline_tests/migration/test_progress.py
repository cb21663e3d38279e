"""Progress: tqdm bars on stderr when it is a terminal (stdout's JSON untouched), log lines otherwise."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from agents_pipeline.defs.migration.progress import LogProgress
from agents_pipeline_tests.migration import dialect_files as D


def test_bars_on_a_terminal_leave_the_json_report_alone(tmp_path: Path, db_url: str):
    path = D.make_dialect_file(tmp_path / "other.db")
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": db_url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))   # a new pty is 0 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                             "--accept-rejects"], env=env, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:     # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    assert json.loads(out)["ok"] is True            # stdout is the report alone
    terminal = seen.decode("utf-8", "replace")
    assert "agents" in terminal and " rows/s" in terminal and "100%" in terminal, terminal[-2000:]


def test_bars_are_off_when_stderr_is_not_a_terminal(tmp_path: Path, db_url: str):
    path = D.make_dialect_file(tmp_path / "other.db")
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": db_url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                           "--accept-rejects"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "" and json.loads(done.stdout)["ok"]


def test_log_lines_give_rows_rate_and_eta():
    lines: list[str] = []
    progress = LogProgress(lines.append, every_s=0)
    progress.start("agent_heartbeats", 1000)
    progress.update("agent_heartbeats", 250)
    progress.update("agent_heartbeats", 250)
    progress.finish("agent_heartbeats")
    assert lines[0].startswith("agent_heartbeats: 250 / ~1,000 rows (25%), ") and " rows/s, ETA " in lines[0]
    assert lines[1].startswith("agent_heartbeats: 500 / ~1,000 rows (50%)")
    assert lines[-1].startswith("agent_heartbeats: 500 rows in ") and lines[-1].endswith(" s, done")
