"""Small legacy SQLite files with every kind of dirt the legacy README lists.

Each dirty row carries its expected fate in ``EXPECTED``: converted (with the value it must
arrive as) or rejected (with a word the reason must contain).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = (Path(__file__).resolve().parents[2] / "docs" / "legacy" / "schema.sql").read_text()
RUN_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
HOSTILE = 'x"; DROP TABLE fleet.agents; --'

# (agent_id, agent_name, agent_type, status, config, created_at, last_heartbeat, is_enabled)
AGENTS = [
    ("alpha", "Alpha", "heartbeat_health", "active", '{"interval": 60}', "2025-01-01 00:00:00", "2025-01-20T10:00:00", 1),
    ("beta", "Beta", None, "inactive", "{'mode': 'fast', 'on': True}", 1735689600, None, "false"),  # Python repr
    ("gamma", "Gamma", "coordinator", "error", '{"a": 1', "2025-01-01", None, 1),                     # truncated JSON
    ("bad\x01name", "Bad", None, None, None, None, None, 1),                                           # control char
]

# (agent_id, timestamp, status, metadata) -> expected: ("ok", utc iso) or ("reject", reason word)
HEARTBEATS = [
    ("alpha", "2025-01-20T10:00:00.123456", "healthy", '{"load": 0.5}', ("ok", "2025-01-20T10:00:00.123456+00:00")),
    ("alpha", "2025-01-20 10:00:01", "degraded", None, ("ok", "2025-01-20T10:00:01+00:00")),
    ("alpha", "2025-01-20T10:00:02Z", "healthy", "", ("ok", "2025-01-20T10:00:02+00:00")),
    ("alpha", "2025-01-20T12:00:03+02:00", "starting", None, ("ok", "2025-01-20T10:00:03+00:00")),
    ("beta", 1737367204, "error", None, ("ok", "2025-01-20T10:00:04+00:00")),
    ("beta", 1737367205.25, "stopping", None, ("ok", "2025-01-20T10:00:05.250000+00:00")),
    ("beta", "1737367206", "healthy", "{'k': None}", ("ok", "2025-01-20T10:00:06+00:00")),
    ("ghost", "2025-01-21T00:00:00", "healthy", None, ("ok", "2025-01-21T00:00:00+00:00")),   # placeholder agent
    ("gamma", "2025-01-22T00:00:00", "healthy", None, ("ok", "2025-01-22T00:00:00+00:00")),   # rejected agent row
    ("alpha", 0, "healthy", None, ("reject", "sensible range")),                              # epoch 0
    ("alpha", "2106-02-07 06:28:15", "healthy", None, ("reject", "sensible range")),          # 2**32 s
    ("alpha", 4294967295, "healthy", None, ("reject", "sensible range")),
    ("alpha", "yesterday", "healthy", None, ("reject", "not a timestamp")),
    ("alpha", "", "healthy", None, ("reject", "required")),
    ("alpha", "2025-01-20T10:00:07", "healthy", '{"x":', ("reject", "invalid JSON")),
    ("alpha", "2025-01-20T10:00:08", "heal\x00thy", None, ("reject", "NUL")),
    ("alpha", "2025-01-20T10:00:09", b"\xff\xfebad", None, ("reject", "UTF-8")),             # stored as TEXT
    ("alpha", "2025-01-20T10:00:10", "healthy", '{"s": "a\\u0000b"}', ("reject", "jsonb")),
    ("bad\x01name", "2025-01-20T10:00:11", "healthy", None, ("reject", "agent name")),
]

# (timestamp, agent_id, metric_name, metric_value, unit, tags) -> expected value or reject word
METRICS = [
    ("2025-01-20T10:00:00", "alpha", "cpu_percent", 12.5, "%", '{"host": "h1"}', ("ok", 12.5)),
    ("2025-01-20T10:01:00", None, "memory_mb", 2048, "MB", None, ("ok", 2048.0)),
    ("2025-01-20T10:02:00", "alpha", "cpu_percent", "N/A", None, None, ("ok", None)),
    ("2025-01-20T10:03:00", "alpha", "cpu_percent", "12.5%", None, None, ("ok", 12.5)),
    ("2025-01-20T10:04:00", "alpha", "cpu_percent", "lots", None, None, ("reject", "not a number")),
    ("2025-01-20T10:05:00", "ghost", "disk_percent", 0.1, None, "not json", ("reject", "invalid JSON")),
    ("2025-01-20T10:06:00", "alpha", "response_time_ms", 1234567.890123, "ms", None, ("ok", 1234567.890123)),
]

# (alert_type, severity, agent_id, message, created_at, resolved, resolved_at)
ALERTS = [
    ("agent_down", "critical", "alpha", "alpha is down", "2025-01-20T10:00:00", 1, "2025-01-20T11:00:00"),
    ("agent_down", "critical", "alpha", "alpha is down again", "2025-01-21T10:00:00", 0, None),
    ("agent_down", "critical", "alpha", "and again", "2025-01-22T10:00:00", "false", None),
    ("high_cpu", "ERROR", "ghost", "cpu 99%", "2025-01-20T10:00:00", "true", None),
    ("high_cpu", "warning", "alpha", None, None, 0, None),                        # no created_at
]

# (conversation_id, agent_id, run_id, model, prompt, response, pt, ct, tt, cost, latency_ms, created_at, metadata)
CONVERSATIONS = [
    ("c1", "alpha", RUN_UUID, "gpt", "hi " * 1000, "hello", 10, 5, 15, 0.0012, 350.5, "2025-01-20T10:00:00", '{"t": 1}'),
    ("c2", "alpha", None, "gpt", "p2", "r2", "12", 3, 15, "0.5", 10, "2025-01-20T10:01:00", None),
    ("c3", "ghost", "not-a-uuid", "gpt", "p3", "r3", 1, 1, 2, 0, 1.5, 1737367200, "{}"),
    ("c4", "alpha", RUN_UUID, "gpt", "dup", "dup", 1, 1, 2, 0, 1, "2025-01-20T10:02:00", None),   # duplicate run
    ("c5", "alpha", None, "gpt", "p5", "r5", "many", 1, 2, 0, 1, "2025-01-20T10:03:00", None),    # bad tokens
]

# (user_id, question, context, response, status, created_at, responded_at, sources)
HELP = [
    ("u1", "How do I restart?", '{"page": "ops"}', "Run it again", "answered", "2025-01-20T10:00:00",
     "2025-01-20T10:05:00", '["docs/ops.md"]'),
    ("u2", "Is alpha ok?", None, None, "pending", "2025-01-20T11:00:00", None, None),
    ("u3", "what\x00?", None, None, "pending", "2025-01-20T12:00:00", None, None),   # NUL in question
]

# (key, value, updated_by, updated_at, version)
STATE = [
    ("config/threshold", '{"cpu": 90}', "alpha", "2025-01-20T10:00:00", 3),
    ("greeting", "hello world", "beta", "2025-01-20 10:00:00", 1),
    ("broken", "x", "beta", "2025-01-20 10:00:00", "seven"),
    ("zero", "1", None, None, 0),
]

# (from_agent, to_agent, message_type, payload, created_at, processed)
MESSAGES = [
    ("alpha", None, "broadcast", '{"hello": 1}', "2025-01-20T10:00:00", "true"),
    ("ghost2", "alpha", "task", '{"do": "x"}', "2025-01-20T10:01:00", 0),
    ("alpha", "beta", "task", "{bad", "2025-01-20T10:02:00", 0),
]

CONFIG = [
    ("retention_days", "30", "days to keep", "2025-01-01"),
    ("mode", "production", None, None),
    ("limits", '{"max": 5}', "json", "2025-01-01T00:00:00Z"),
]

USER_ROWS = [
    (1, "plain", 1.5, b"\x00\x01\xff"),
    (2, "caf\u00e9 \U0001F600", 2, None),
    (3, None, None, b""),
]


def make_legacy_file(path: Path, *, older: bool = False, extra_table: bool = True) -> Path:
    """Writes a dirty legacy file; ``older`` drops agent_messages and shared_state.version."""
    conn = sqlite3.connect(path)
    schema = SCHEMA
    if older:
        schema = schema.replace("    updated_at  TEXT,\n    version     INTEGER DEFAULT 1\n", "    updated_at  TEXT\n")
        schema = schema.split("CREATE TABLE IF NOT EXISTS agent_messages")[0] + "CREATE TABLE IF NOT EXISTS system_config" \
            + schema.split("CREATE TABLE IF NOT EXISTS system_config")[1]
    conn.executescript(schema)
    conn.executemany("INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", AGENTS)
    for agent_id, ts, status, metadata, _ in HEARTBEATS:
        if isinstance(status, bytes):  # invalid UTF-8 stored with TEXT storage class
            conn.execute("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) "
                         "VALUES (?, ?, CAST(? AS TEXT), ?)", (agent_id, ts, status, metadata))
        else:
            conn.execute("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) VALUES (?, ?, ?, ?)",
                         (agent_id, ts, status, metadata))
    conn.executemany("INSERT INTO performance_metrics (timestamp, agent_id, metric_name, metric_value, unit, tags) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [m[:6] for m in METRICS])
    conn.executemany("INSERT INTO system_alerts (alert_type, severity, agent_id, message, created_at, resolved, "
                     "resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?)", ALERTS)
    conn.executemany("INSERT INTO llm_conversations (conversation_id, agent_id, run_id, model, prompt, response, "
                     "prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, created_at, metadata) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", CONVERSATIONS)
    conn.executemany("INSERT INTO help_requests (user_id, question, context, response, status, created_at, "
                     "responded_at, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     HELP)
    if older:
        conn.executemany("INSERT INTO shared_state (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?)",
                         [s[:4] for s in STATE])
    else:
        conn.executemany("INSERT INTO shared_state VALUES (?, ?, ?, ?, ?)", STATE)
        conn.executemany("INSERT INTO agent_messages (from_agent, to_agent, message_type, payload, created_at, "
                         "processed) VALUES (?, ?, ?, ?, ?, ?)", MESSAGES)
    conn.executemany("INSERT INTO system_config VALUES (?, ?, ?, ?)", CONFIG)
    if extra_table:
        conn.execute(f'CREATE TABLE "{HOSTILE.replace(chr(34), chr(34) * 2)}" '
                     '(id INTEGER PRIMARY KEY, label TEXT, amount NUMERIC, data BLOB)')
        conn.executemany(f'INSERT INTO "{HOSTILE.replace(chr(34), chr(34) * 2)}" VALUES (?, ?, ?, ?)',  # noqa: S608
                         USER_ROWS)
    conn.commit()
    conn.close()
    return path
