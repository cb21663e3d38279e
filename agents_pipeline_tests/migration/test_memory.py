"""Peak memory of a migration, summed over its whole process tree (worker processes included).

Regression: a 1.2 GB file peaked at 1.58 GB RSS. Batches were cut by rows only: 2,000
conversations or 20,000 rows of a user table, however large each row, and each batch exists
several times over (values, CSV text, CSV bytes, a queue of two). The rows here are big enough
that one row-count batch of either table alone would take the tree past 512 MB.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from agents_pipeline_tests.migration.legacy_files import SCHEMA

LIMIT = 512 * 1024 * 1024
CONVERSATIONS = 2_000        # one row-count batch (20,000 / 10): the whole table
TEXT_BYTES = 60_000          # prompt and response each: 240 MB of text in the table
ATTACHMENTS = 4_000          # a user table, copied whole into the legacy schema
ATTACHMENT_BYTES = 40_000    # 160 MB: one row-count batch (20,000) would hold all of it


def _big_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO agents (agent_id, agent_name) VALUES ('alpha', 'Alpha')")
    # hex(randomblob(n)): 2n characters that compress poorly, written by SQLite in C (seconds, not minutes)
    conn.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CONVERSATIONS})
                    INSERT INTO llm_conversations (conversation_id, agent_id, model, prompt, response, prompt_tokens,
                                                   created_at, metadata)
                    SELECT 'c' || i, 'alpha', 'gpt', hex(randomblob({TEXT_BYTES // 2})), hex(randomblob({TEXT_BYTES // 2})),
                           i, '2025-01-20T10:00:00', '{{"n": ' || i || '}}' FROM n""")  # noqa: S608 - constants
    conn.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
    conn.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ATTACHMENTS})
                    INSERT INTO attachments SELECT i, 'file' || i, hex(randomblob({ATTACHMENT_BYTES // 2})) FROM n""")  # noqa: S608
    conn.commit()
    conn.close()
    return path


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:   # a worker that just exited
            pass
    return total


def _peak_rss(path: Path, db_url: str, *args: str) -> tuple[int, int]:
    """Runs the CLI on ``path``; returns (peak RSS of its process tree, most processes seen)."""
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": db_url,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak, processes = 0, 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, processes
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(root))
                processes = max(processes, 1 + len(root.children(recursive=True)))
            except psutil.Error:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=600)
    done.set()
    sampler.join()
    assert proc.returncode == 0, err[-2000:]
    return peak, processes


@pytest.mark.slow
def test_peak_rss_of_the_process_tree_stays_under_512_mb(tmp_path: Path, db_url: str, query):
    path = _big_file(tmp_path / "big.db")
    assert path.stat().st_size > 400_000_000
    peak, processes = _peak_rss(path, db_url, "--side-by-side")
    assert processes >= 2          # the conversations' worker was sampled too
    assert 0 < peak < LIMIT, f"peak RSS of the process tree {peak / 2**20:.0f} MiB"
    assert query("SELECT count(*), sum(length(prompt) + length(response)) FROM fleet.llm_conversations") == [
        (CONVERSATIONS, 2 * CONVERSATIONS * TEXT_BYTES)]
    assert query("SELECT count(*) FROM legacy.attachments") == [(ATTACHMENTS,)]


SMALL_BEATS = 30_000       # enough for the set-based path to fetch its largest chunks
BIG_BEATS = 700            # then, at once, heartbeats with 400 KB of metadata each: 280 MB
BIG_META_BYTES = 400_000


@pytest.mark.slow
def test_a_run_of_large_heartbeats_after_small_ones_stays_under_512_mb(tmp_path: Path, db_url: str, query):
    """The set-based path sizes its fetches from the rows it has seen. After 30,000 small
    heartbeats, a chunk of 1,024 rows of 400 KB each would hold 400 MB at once: rows with a
    value over 16 KiB come back as their size and go to the converters in byte-bounded groups."""
    path = tmp_path / "beats.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO agents (agent_id, agent_name) VALUES ('alpha', 'Alpha')")
    conn.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SMALL_BEATS})
                    INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata)
                    SELECT 'alpha', '2025-01-20T10:00:00', 'healthy', '{{"n": ' || i || '}}' FROM n""")  # noqa: S608
    conn.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BIG_BEATS})
                    INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata)
                    SELECT 'alpha', '2025-01-20T11:00:00', 'healthy',
                           '{{"blob": "' || hex(randomblob({BIG_META_BYTES // 2})) || '"}}' FROM n""")  # noqa: S608
    conn.commit()
    conn.close()
    peak, processes = _peak_rss(path, db_url, "--side-by-side")
    assert processes >= 2          # the heartbeats worker was sampled too
    assert 0 < peak < LIMIT, f"peak RSS of the process tree {peak / 2**20:.0f} MiB"
    assert query("SELECT count(*), count(*) FILTER (WHERE length(payload::text) > 100000) FROM fleet.heartbeats "
                 "WHERE legacy_id IS NOT NULL") == [(SMALL_BEATS + BIG_BEATS, BIG_BEATS)]
