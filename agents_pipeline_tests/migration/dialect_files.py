"""A legacy file in another dialect, as field files were found: agents keyed by an integer id
(name and role beside it), heartbeats with cpu and memory columns, metrics with ``value`` and
``recorded_at`` holding epoch integers in some rows and ISO text in others."""

from __future__ import annotations

import sqlite3
from pathlib import Path

AGENTS = [(1, "alpha", "worker", 1735689600), (2, "beta", "coordinator", "2025-01-01T00:00:00"),
          (3, "gamma", "worker", None)]
EPOCH_2025_01_20 = 1737331200     # 2025-01-20T00:00:00Z
HEARTBEATS = 120
METRICS = 150
BAD_METRIC = 77                   # its value is 'lots': rejected, with the reason
UNKNOWN_AGENT_HEARTBEAT = 5       # references agent id 99, which has no row: a placeholder


def heartbeat_row(i: int) -> tuple:
    agent = 99 if i == UNKNOWN_AGENT_HEARTBEAT else 1 + i % 3
    at = EPOCH_2025_01_20 + 60 * i
    beat = at if i % 2 else f"2025-01-20T{(60 * i) // 3600:02d}:{(60 * i) % 3600 // 60:02d}:00"
    return (i, agent, beat, round(0.5 + i % 7 * 0.1, 2), 100 + i)


def metric_row(i: int) -> tuple:
    at = EPOCH_2025_01_20 + 30 * i
    recorded = at if i % 3 else f"2025-01-20 {(30 * i) // 3600:02d}:{(30 * i) % 3600 // 60:02d}:{(30 * i) % 60:02d}"
    value = "lots" if i == BAD_METRIC else float(i) / 2
    return (i, 1 + i % 3, "queue_depth" if i % 2 else "latency_ms", value, recorded)


def make_dialect_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT, created_at);
        CREATE TABLE heartbeats (id INTEGER PRIMARY KEY, agent_id INTEGER, beat_at, cpu REAL, memory INTEGER);
        CREATE TABLE metrics (id INTEGER PRIMARY KEY, agent_id INTEGER, name TEXT, value REAL, recorded_at);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
    """)
    conn.executemany("INSERT INTO agents VALUES (?, ?, ?, ?)", AGENTS)
    conn.executemany("INSERT INTO heartbeats VALUES (?, ?, ?, ?, ?)", [heartbeat_row(i) for i in range(1, HEARTBEATS + 1)])
    conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [metric_row(i) for i in range(1, METRICS + 1)])
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "kept as it is"), (2, "in the legacy schema")])
    conn.commit()
    conn.close()
    return path
