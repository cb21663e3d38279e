"""Progress of the long retention commands (issue #21): `archive run`, `archive restore` and
`db backup` draw a bar with rows/s and ETA when stderr is a terminal, leave their `--json`
document alone, and an archival run in Dagster logs the same progress."""

from __future__ import annotations

import json
import os

import dagster as dg

from agents_pipeline.console import Progress
from agents_pipeline.defs.retention import archiver, assets, policy, restore
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, seed_heartbeats
from agents_pipeline_tests.terminal import CLI, run_with_terminal_stderr


def test_archive_run_restore_and_backup_draw_progress_and_keep_json_clean(db_env, archive_dir, tmp_path):
    seed_heartbeats(db_env, OLD_DAY, 3000)
    env = {**os.environ, "AGENTS_PIPELINE_ARCHIVE_PACE": "100"}
    day = OLD_DAY.isoformat()

    code, out, shown = run_with_terminal_stderr([*CLI, "archive", "run", "heartbeats", day, "--json"], env)
    assert code == 0, shown
    result = json.loads(out)
    assert (result["outcome"], result["rows"], result["day"]) == ("archived", 3000, day)
    assert f"archive heartbeats {day}: export" in shown and f"archive heartbeats {day}: verify" in shown
    assert "3.00k/3.00k" in shown and "rows/s" in shown

    code, out, shown = run_with_terminal_stderr([*CLI, "archive", "restore", "heartbeats", day, "--json"], env)
    assert code == 0, shown
    result = json.loads(out)
    assert result["rows_inserted"] == 3000 and result["exact"] is True and result["ok"] is True
    assert f"restore heartbeats {day}: load" in shown and "3.00k/3.00k" in shown and "rows/s" in shown

    code, out, shown = run_with_terminal_stderr([*CLI, "db", "backup", str(tmp_path / "b.dump"), "--json"], env)
    assert code == 0, shown
    result = json.loads(out)
    assert result["path"] == str(tmp_path / "b.dump") and result["rows"] >= 3000 and result["bytes"] > 0
    assert "db backup: dump" in shown and "db backup: checksums" in shown and "rows/s" in shown


def test_without_a_terminal_nothing_but_the_result_is_printed(db_env, archive_dir, capfd):
    """Guards cron and pipes: no bar, no carriage returns, stdout one document, stderr empty."""
    from agents_pipeline.cli.main import main

    seed_heartbeats(db_env, OLD_DAY, 200)
    assert main(["archive", "run", "heartbeats", OLD_DAY.isoformat(), "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["rows"] == 200 and err == ""


def test_archive_and_restore_report_their_phases_to_a_log(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 500)
    lines: list[str] = []
    with Progress("archive", log=lines.append, every_s=0) as progress:
        archiver.archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, policy.retention_days()["heartbeats"],
                             progress=progress)
    assert any(line.startswith("archive: export: ") and "/s" in line for line in lines), lines
    assert "archive: export: done, 500 rows in" in "\n".join(lines)       # the export phase's total
    assert lines[-1].startswith("archive: verify: done, 500 rows in"), lines
    lines.clear()
    with Progress("restore", log=lines.append, every_s=0) as progress:
        restore.restore_day(db_url, archive_dir, "heartbeats", OLD_DAY, progress=progress)
    assert "restore: load: 500/500 rows (100%)" in "\n".join(lines), lines
    assert lines[-1].startswith("restore: load: done, 500 rows in"), lines


def test_an_archival_run_logs_its_progress_in_dagster(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 300)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([assets.raw_telemetry_archive], partition_key=OLD_DAY.isoformat(),
                            resources={"postgres": PostgresResource(url=db_url)}, instance=instance)
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"archive heartbeats {OLD_DAY}: verify: done, 300 rows in" in "\n".join(messages), messages
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]
