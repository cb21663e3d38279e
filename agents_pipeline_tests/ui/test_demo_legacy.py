"""The demo's legacy file migrates, verified, and a second run adds nothing."""

from __future__ import annotations

from pathlib import Path

import yaml

from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline.demo.legacy import main, write_legacy_file


def test_demo_legacy_file_migrates_verified(db_url: str, tmp_path: Path) -> None:
    path = write_legacy_file(tmp_path / "background_agents.db")
    report = migrate_sqlite(path, db_url, source_name="demo-legacy")
    assert report.ok, report.to_markdown()
    by_table = {t.table: t for t in report.tables}
    assert by_table["agent_heartbeats"].written == 6
    assert by_table["performance_metrics"].read == 2  # one of them 'N/A' in a REAL column
    assert by_table["performance_metrics"].written + by_table["performance_metrics"].rejected == 2
    assert by_table["shared_state"].written == 1
    again = migrate_sqlite(path, db_url, source_name="demo-legacy")
    assert again.ok and sum(t.new_this_run for t in again.tables) == 0


def test_demo_legacy_prints_the_launch_config(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "legacy.db")]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    op = config["ops"]["migrate_sqlite_file"]["config"]
    assert Path(op["path"]).exists() and op["source_name"] == "demo-legacy"
