"""Reads that only display, sent to a streaming replica when one is configured.

``AGENTS_PIPELINE_READ_DATABASE_URL`` names a hot standby; status listings, the UI's summaries,
help retrieval and reads of rollups and LLM statistics may go there, so that a busy operator
screen costs the primary nothing. Everything that writes, and everything that judges liveness
(the health evaluation, alerting, the heartbeat path, readiness's own heartbeat), stays on the
primary: a replica is behind by its lag, and a health verdict made on stale heartbeats would
raise false alerts. Unset, the reads go to the primary as before.

The lag is measured on the replica itself: zero while it has replayed all it received, else the
age of the last transaction it replayed (PostgreSQL's usual measure; it grows while the primary
is idle too, which is why "all received is replayed" counts as caught up).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agents_pipeline.core import settings
from agents_pipeline.core.connection import Database

LAG_SQL = """
    SELECT pg_is_in_recovery(),
           CASE WHEN NOT pg_is_in_recovery() THEN NULL
                WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0
                -- A standby that has replayed no transaction since it started has no replay
                -- timestamp: it is behind at least since it started (greatest() would skip a NULL
                -- and read 0, caught up, while WAL waits unreplayed).
                ELSE greatest(0.0, extract(epoch FROM clock_timestamp()
                                   - coalesce(pg_last_xact_replay_timestamp(), pg_postmaster_start_time())))::float
           END,
           pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint"""


def read_url() -> str | None:
    """The replica's URL, or None when display reads go to the primary."""
    return os.environ.get(settings.READ_DATABASE_URL, "").strip() or None


def resolve_read_url() -> str:
    """The replica's URL when set, else the shared-state URL (``shared_state.resolve_url``)."""
    from agents_pipeline.core.shared_state import resolve_url

    return read_url() or resolve_url()


@dataclass(frozen=True)
class ReplicaLag:
    in_recovery: bool            # False: the URL names a primary (or a promoted standby)
    lag_s: float | None          # seconds behind; None when it is no replica
    replay_pending_bytes: int    # WAL received and not yet replayed


def lag(db: Database) -> ReplicaLag:
    """The replica's lag, read on the replica."""

    def work(cur):
        cur.execute(LAG_SQL)
        return cur.fetchone()

    in_recovery, lag_s, pending = db.transaction(work)
    return ReplicaLag(bool(in_recovery), None if lag_s is None else float(lag_s), int(pending or 0))
