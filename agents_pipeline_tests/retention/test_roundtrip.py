"""Archive a day and restore it: every value equal, files and manifest as promised."""

from __future__ import annotations

import json

from agents_pipeline.retention import store
from agents_pipeline.retention.archiver import archive_day
from agents_pipeline.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, rows_of, seed_heartbeats

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats WHERE received_at >= %s AND received_at < %s::date + 1"


def test_heartbeat_day_archives_and_restores_with_every_value_equal(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 3000)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    assert len(before) == 3000

    result = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert result.outcome == "archived" and result.rows == 3000
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == []
    assert execute(db_url, "SELECT to_regclass(%s)", (f"fleet.heartbeats_p{OLD_DAY:%Y%m%d}",)) == [(None,)]
    manifest = json.loads(store.manifest_path(archive_dir, "heartbeats", OLD_DAY).read_text())
    assert manifest["files"][0]["rows"] == 3000 and len(manifest["files"][0]["sha256"]) == 64
    assert execute(db_url, "SELECT status, row_count FROM fleet.archive_ledger") == [("archived", 3000)]

    restored = restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    assert restored.rows_inserted == 3000 and restored.exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before
    # Held: the next archival run leaves it in place.
    again = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert again.outcome == "held"
    assert len(rows_of(db_url, HB, (OLD_DAY, OLD_DAY))) == 3000
