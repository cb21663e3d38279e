"""A small legacy SQLite shared-state file for the demo, so that `make demo` also runs the
migration (through the Launchpad's job) and the migration group has a report to show.

Run as ``python -m agents_pipeline.demo.legacy PATH``: writes the file and prints the run
config YAML for ``agents-pipeline launch sqlite_migration_job --config``.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from agents_pipeline.core.settings import PROJECT_DIR

SCHEMA = PROJECT_DIR / "docs" / "legacy" / "schema.sql"


def write_legacy_file(path: Path) -> Path:
    """Two agents with a few heartbeats, metrics, an alert and a key, timestamps in the legacy
    file's mixed forms, and one dirty value ('N/A' in a REAL column)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    conn.executemany(
        "INSERT INTO agents (agent_id, agent_name, agent_type, status, config, created_at, last_heartbeat) "
        "VALUES (?, ?, 'coordinator', 'inactive', '{}', '2025-01-20 10:00:00', ?)",
        [("legacy-one", "Legacy one", "2025-01-20T10:05:00Z"), ("legacy-two", "Legacy two", "2025-01-20 10:06:00")],
    )
    conn.executemany(
        "INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) VALUES (?, ?, 'healthy', '{}')",
        [("legacy-one", f"2025-01-20T10:0{i}:00+02:00") for i in range(5)] + [("legacy-two", 1737367200)],
    )
    conn.executemany(
        "INSERT INTO performance_metrics (timestamp, agent_id, metric_name, metric_value, unit, tags) "
        "VALUES (?, 'legacy-one', 'cpu_percent', ?, '%', '{}')",
        [("2025-01-20T10:00:00Z", 12.5), ("2025-01-20T10:01:00Z", "N/A")],
    )
    conn.execute("INSERT INTO system_alerts (alert_type, severity, agent_id, message, created_at, resolved) "
                 "VALUES ('agent_down', 'critical', 'legacy-two', 'stopped', '2025-01-20 11:00:00', 1)")
    conn.execute("INSERT INTO shared_state (key, value, updated_by, updated_at, version) "
                 "VALUES ('legacy/mode', '\"fast\"', 'legacy-one', '2025-01-20T10:00:00Z', 3)")
    conn.commit()
    conn.close()
    return path


def main(argv: list[str]) -> int:
    path = write_legacy_file(Path(argv[0]).resolve())
    print(f"ops:\n  migrate_sqlite_file:\n    config:\n      path: {str(path)!r}\n      source_name: demo-legacy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
