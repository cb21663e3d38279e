"""The legacy SQLite file the migration benchmark moves: heartbeats, metrics, conversations with
multi-KB texts, agents and alerts, with each kind of dirt the legacy README lists planted at known
rowids (rowid % modulus), so that what each tool did with a dirty row can be looked up by rowid
in both databases afterwards.

Split from sqlite_migration.py: the file's contents are the benchmark's fixture, shared by the
timing and by the report of dirty rows' fates (sqlite_migration_report.py).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = (ROOT / "docs" / "legacy" / "schema.sql").read_text()
AGENTS = 50
BASE = 1_735_689_600  # 2025-01-01T00:00:00Z
WORDS = ("agent", "model", "token", "latency", "prompt", "context", "answer", "retry", "cache", "vector", "tool",
         "heartbeat", "fleet", "queue", "error", "summary", "report", "memory", "plan", "step")

# Dirt per table: rowid % modulus -> kind. The same rowids are checked in both databases.
HB_DIRT = {1: "epoch integer", 2: "epoch real", 3: "Z suffix", 4: "+02:00 offset", 5: "invalid UTF-8 text",
           6: "NUL in text", 7: "invalid JSON", 8: "epoch 0", 9: "year 2106", 10: "agent not in agents",
           11: "Python repr JSON"}
METRIC_DIRT = {1: "'N/A' in REAL", 2: "'12.5%' in REAL", 3: "'abc' in REAL", 4: "epoch seconds in REAL (8 bytes)"}
CONV_DIRT = {1: "'many' in INTEGER", 2: "NUL in text", 3: "invalid UTF-8 text"}
HB_MOD, METRIC_MOD, CONV_MOD = 1000, 1000, 100
# dirty: every kind of dirt; clean: none; history: clean without the conversations, the one
# file pgloader completes (its heap runs out on 100 k multi-KB conversations).
VARIANTS = ("dirty", "clean", "history")
# pgloader stops reading a table at the first row of these kinds and loses the rest of it, so
# they sit in the last 1 % of each table: its timing then covers 99 % of the rows, not 0.5 %.
STOPS_PGLOADER = {"invalid UTF-8 text"}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def generate(path: Path, heartbeats: int, metrics: int, conversations: int, dirty: bool = True) -> dict[str, int]:
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    conn.executemany("INSERT INTO agents VALUES (?, ?, ?, 'active', ?, ?, ?, 1)",
                     [(f"agent-{i}", f"Agent {i}", "worker", json.dumps({"n": i}), _iso(BASE), _iso(BASE + 86400 * 30))
                      for i in range(AGENTS)])

    def hb_rows():
        for rid in range(1, heartbeats + 1):
            t = BASE + rid * 1.3
            kind = HB_DIRT.get(rid % HB_MOD) if dirty and rid % HB_MOD else None
            if kind in STOPS_PGLOADER and rid < heartbeats * 0.99:
                kind = None  # dirt that stops pgloader's reader only in the last 1 % (see below)
            agent, ts, status, meta = f"agent-{rid % AGENTS}", _iso(t) + f".{rid % 1000:03d}", "healthy", None
            if rid % 7 == 0:
                meta = f'{{"load": {rng.random():.2f}, "queue": {rid % 50}}}'
            if kind == "epoch integer":
                ts = int(t)
            elif kind == "epoch real":
                ts = t + 0.25
            elif kind == "Z suffix":
                ts = _iso(t) + "Z"
            elif kind == "+02:00 offset":
                ts = _iso(t + 7200) + "+02:00"
            elif kind == "invalid UTF-8 text":
                status = b"ok\xff\xfe"
            elif kind == "NUL in text":
                status = "ok\x00tail"
            elif kind == "invalid JSON":
                meta = '{"load": 0.5, "que'
            elif kind == "epoch 0":
                ts = 0
            elif kind == "year 2106":
                ts = "2106-02-07 06:28:15"
            elif kind == "agent not in agents":
                agent = f"ghost-{rid % 5}"
            elif kind == "Python repr JSON":
                meta = "{'load': 0.5, 'ok': True}"
            yield rid, agent, ts, status, meta

    conn.executemany("INSERT INTO agent_heartbeats VALUES (?, ?, ?, CAST(? AS TEXT), ?)", hb_rows())

    def metric_rows():
        names = ("cpu_percent", "memory_mb", "disk_percent", "response_time_ms")
        for rid in range(1, metrics + 1):
            kind = METRIC_DIRT.get(rid % METRIC_MOD) if dirty and rid % METRIC_MOD else None
            if kind in STOPS_PGLOADER and rid < metrics * 0.99:
                kind = None
            value: object = round(rng.random() * 100, 3)
            name = names[rid % 4]
            if kind == "'N/A' in REAL":
                value = "N/A"
            elif kind == "'12.5%' in REAL":
                value = "12.5%"
            elif kind == "'abc' in REAL":
                value = "abc"
            elif kind == "epoch seconds in REAL (8 bytes)":
                name, value = "last_run_epoch", BASE + rid + 0.123456
            yield (rid, _iso(BASE + rid * 2.6), f"agent-{rid % AGENTS}" if rid % 5 else None, name, value,
                   "%" if name.endswith("percent") else None, f'{{"host": "h{rid % 3}"}}')

    conn.executemany("INSERT INTO performance_metrics VALUES (?, ?, ?, ?, ?, ?, ?)", metric_rows())
    block = " ".join(rng.choice(WORDS) for _ in range(200_000))

    def conv_rows():
        for rid in range(1, conversations + 1):
            kind = CONV_DIRT.get(rid % CONV_MOD) if dirty and rid % CONV_MOD else None
            if kind in STOPS_PGLOADER and rid < conversations * 0.99:
                kind = None
            start = (rid * 7919) % (len(block) - 8000)
            prompt: object = block[start:start + 2000 + rid % 2000]
            response: object = block[start + 100:start + 1500 + rid % 1500]
            tokens: object = 100 + rid % 900
            if kind == "'many' in INTEGER":
                tokens = "many"
            elif kind == "NUL in text":
                response = "partial\x00" + str(response)
            elif kind == "invalid UTF-8 text":
                prompt = b"\xc3\x28" + str(prompt).encode()
            yield (rid, f"conv-{rid // 3}", f"agent-{rid % AGENTS}", None, "gpt-4o", prompt, response, tokens, 200,
                   300, 0.0012, 850.5, _iso(BASE + rid * 26), '{"temperature": 0.2}')

    conn.executemany("INSERT INTO llm_conversations VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?)",
                     conv_rows())
    conn.executemany("INSERT INTO system_alerts (alert_type, severity, agent_id, message, created_at, resolved) "
                     "VALUES ('agent_down', 'critical', ?, 'down', ?, ?)",
                     [(f"agent-{i % AGENTS}", _iso(BASE + i * 600), "true" if dirty and i % 10 == 0 else i % 2)
                      for i in range(1000)])
    conn.commit()
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
              for t in ("agents", "agent_heartbeats", "performance_metrics", "llm_conversations", "system_alerts")}
    conn.close()
    return counts
