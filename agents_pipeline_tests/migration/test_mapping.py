"""A file in another dialect: drafted mapping, edited, applied, re-run; hostile mapping files.

The file (``dialect_files.py``) keys agents by an integer id, keeps cpu and memory in columns of
its heartbeats and mixes epoch integers with ISO text in ``metrics.recorded_at``: without a
mapping every agent row is rejected and the run exits 1 naming the table and the hint.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from agents_pipeline.cli.main import main
from agents_pipeline_tests.migration import dialect_files as D
from agents_pipeline_tests.migration.conftest import snapshot


@pytest.fixture
def dialect_file(tmp_path: Path) -> Path:
    return D.make_dialect_file(tmp_path / "other.db")


def _draft(path: Path, out: Path, capsys) -> dict:
    assert main(["migrate-sqlite", str(path), "--dry-run", "--write-mapping", str(out)]) == 0
    capsys.readouterr()
    return yaml.safe_load(out.read_text())


def test_draft_chooses_targets_fields_and_conversions_by_name_and_content(dialect_file, tmp_path, capsys):
    draft = _draft(dialect_file, tmp_path / "mapping.yaml", capsys)
    tables = draft["tables"]
    assert {name: t["target"] for name, t in tables.items()} == {
        "agents": "fleet.agents", "heartbeats": "fleet.heartbeats", "metrics": "fleet.perf_samples", "notes": "legacy"}
    assert tables["agents"]["key"] == "id"
    assert tables["agents"]["columns"]["name"] == {"from": "name", "convert": "as_is"}
    assert tables["agents"]["columns"]["agent_type"] == {"from": "role", "convert": "as_is"}
    # recorded_at holds epoch integers and ISO text: found by name, its conversion by content
    assert tables["metrics"]["columns"]["sampled_at"] == {"from": "recorded_at", "convert": "epoch_or_iso"}
    assert tables["metrics"]["columns"]["agent"] == {"from": "agent_id", "convert": "agent_key"}
    assert tables["metrics"]["columns"]["value"] == {"from": "value", "convert": "as_is"}
    # beat_at matches no time word but holds times only: chosen by content
    assert tables["heartbeats"]["columns"]["received_at"] == {"from": "beat_at", "convert": "epoch_or_iso"}
    assert tables["heartbeats"]["columns"]["payload"] == {"from": ["cpu", "memory"], "convert": "json_object"}
    assert "50% ISO text, 50% epoch seconds" in (tmp_path / "mapping.yaml").read_text()
    # never written over
    assert main(["migrate-sqlite", str(dialect_file), "--dry-run", "--write-mapping", str(tmp_path / "mapping.yaml")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_without_a_mapping_the_run_exits_1_naming_the_table_reasons_and_hint(dialect_file, db_env, capsys, query):
    assert main(["migrate-sqlite", str(dialect_file), "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err     # --json: no log lines, the outcome alone
    line = err[0]
    assert "agents: 3 of 3 rows rejected (100.0%)" in line
    assert "agent_id: missing (NULL) but required (3)" in line
    assert "--write-mapping mapping.yaml" in line and "--accept-rejects" in line
    # the run itself is complete and verified: the rejects are kept, the outcome is the problem
    report = query("SELECT ok, report FROM fleet.legacy_runs")
    assert report[0][0] is True and report[0][1]["reject_problem"] == "rejects over the 1.0% allowed per table: " + \
        line.split("rejects over the 1.0% allowed per table: ", 1)[1]
    assert main(["migrate-sqlite", str(dialect_file), "--max-reject-share", "100%"]) == 0
    assert main(["migrate-sqlite", str(dialect_file), "--accept-rejects"]) == 0
    capsys.readouterr()
    # a re-run reads nothing new, and still names the stored reasons
    assert main(["migrate-sqlite", str(dialect_file), "--max-reject-share", "0.5"]) == 1
    assert "agents: 3 of 3 rows rejected" in capsys.readouterr().err


def test_mapping_round_trip_draft_edit_apply_rerun(dialect_file, tmp_path, db_env, capsys, query):
    out = tmp_path / "mapping.yaml"
    draft = _draft(dialect_file, out, capsys)
    # The operator's edit: every metric of this file is in percent; status text for heartbeats.
    draft["tables"]["metrics"]["columns"]["unit"] = {"convert": "constant", "value": "%"}
    draft["tables"]["heartbeats"]["columns"]["status"] = {"convert": "constant", "value": "healthy"}
    out.write_text(yaml.safe_dump(draft))
    assert main(["migrate-sqlite", str(dialect_file), "--mapping", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["ok"] and first["reject_problem"] is None
    rows = {t["table"]: t for t in first["tables"]}
    assert (rows["agents"]["written"], rows["agents"]["rejected"]) == (3, 0)
    assert (rows["agent_heartbeats"]["written"], rows["agent_heartbeats"]["rejected"]) == (D.HEARTBEATS, 0)
    assert (rows["performance_metrics"]["written"], rows["performance_metrics"]["rejected"]) == (D.METRICS - 1, 1)
    assert rows["performance_metrics"]["source_table"] == "metrics"
    assert rows["notes"]["target"] == "legacy.notes"

    # Values: agents by name with their role, times from epoch and from ISO text alike.
    assert query("SELECT name, agent_type, placeholder FROM fleet.agents ORDER BY name") == [
        ("agents.id=99", "generic", True), ("alpha", "worker", False), ("beta", "coordinator", False),
        ("gamma", "worker", False)]
    base = datetime.fromtimestamp(D.EPOCH_2025_01_20, UTC)
    samples = dict(((i, (t, a, m, v, u)) for i, t, a, m, v, u in query(
        "SELECT p.legacy_id, p.sampled_at, a.name, p.metric, p.value, p.unit FROM fleet.perf_samples p "
        "JOIN fleet.agents a USING (agent_id)")))
    for i in (3, 4, 150):   # 3 and 150: ISO text, 4: epoch integers
        _, agent, name, value, recorded = D.metric_row(i)
        assert samples[i] == (base + timedelta(seconds=30 * i), ["alpha", "beta", "gamma"][agent - 1], name,
                              value, "%"), i
    assert D.BAD_METRIC not in samples
    assert query("SELECT reason FROM fleet.legacy_rejects WHERE table_name = 'performance_metrics'") == [
        ("metric_value: 'lots' is not a number",)]
    beats = {i: (t, a, k, m, p) for i, t, a, k, m, p in query(
        "SELECT h.legacy_id, h.received_at, a.name, h.kind, h.message, h.payload FROM fleet.heartbeats h "
        "JOIN fleet.agents a USING (agent_id)")}
    assert beats[2] == (base + timedelta(seconds=120), "gamma", "ok", "healthy", {"cpu": 0.7, "memory": 102})
    assert beats[3][:2] == (base + timedelta(seconds=180), "alpha")
    assert beats[D.UNKNOWN_AGENT_HEARTBEAT][1] == "agents.id=99"
    assert query("SELECT body FROM legacy.notes ORDER BY id") == [("kept as it is",), ("in the legacy schema",)]
    # the mapping, as applied, is stored with the run's report
    stored = query("SELECT report->'mapping' FROM fleet.legacy_runs")[0][0]
    assert stored["tables"]["metrics"]["columns"]["unit"] == {"convert": "constant", "value": "%"}
    assert stored["tables"]["metrics"]["columns"]["sampled_at"] == {"from": "recorded_at", "convert": "epoch_or_iso"}

    before = snapshot(query, ("notes",))
    assert main(["migrate-sqlite", str(dialect_file), "--mapping", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["ok"] and again["totals"]["new_this_run"] == 2     # only the notes table is replaced whole
    assert snapshot(query, ("notes",)) == before


def test_mapped_file_loads_the_same_side_by_side_and_in_one_process(dialect_file, tmp_path, db_env, capsys, query):
    out = tmp_path / "mapping.yaml"
    _draft(dialect_file, out, capsys)
    assert main(["migrate-sqlite", str(dialect_file), "--mapping", str(out), "--side-by-side", "--source", "a"]) == 0
    # The same agents are already registered by source a: kept, the legacy rows rejected with that reason.
    assert main(["migrate-sqlite", str(dialect_file), "--mapping", str(out), "--one-process", "--source", "b",
                 "--accept-rejects"]) == 0
    per_source = query("SELECT s.name, count(*), sum(extract(epoch FROM p.sampled_at)), sum(p.value) "
                       "FROM fleet.perf_samples p JOIN fleet.legacy_sources s ON s.source_id = p.legacy_source "
                       "GROUP BY 1 ORDER BY 1")
    assert len(per_source) == 2 and per_source[0][1:] == per_source[1][1:] and per_source[0][1] == D.METRICS - 1


HOSTILE = {
    "not yaml": ("tables: [unclosed", "not valid YAML at line 1"),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
    "a list": ("- 1\n- 2\n", "expected a YAML mapping"),
    "unknown version": ("version: 2\ntables: {}\n", "version: Input should be 1"),
    "extra key": ("version: 1\ntables: {}\nrun: rm -rf /\n", "run: Extra inputs are not permitted"),
    "unknown target": ("version: 1\ntables:\n  metrics: {target: fleet.secrets}\n", "unknown target 'fleet.secrets'"),
    "unknown field": ("version: 1\ntables:\n  metrics:\n    target: fleet.perf_samples\n    columns:\n"
                      "      sampled_at: {from: recorded_at}\n      metric: {from: name}\n      password: {from: name}\n",
                      "metrics.password: unknown target field of fleet.perf_samples"),
    "unknown conversion": ("version: 1\ntables:\n  metrics:\n    target: fleet.perf_samples\n    columns:\n"
                           "      sampled_at: {from: recorded_at, convert: eval}\n      metric: {from: name}\n",
                           "unknown conversion 'eval'"),
    "missing column": ("version: 1\ntables:\n  metrics:\n    target: fleet.perf_samples\n    columns:\n"
                       "      sampled_at: {from: 'x\"; DROP TABLE metrics; --'}\n      metric: {from: name}\n",
                       "source column 'x\"; DROP TABLE metrics; --' is not in table 'metrics'"),
    "missing table": ("version: 1\ntables:\n  nowhere: {target: legacy}\n", "source table 'nowhere' is not in the file"),
    "required field": ("version: 1\ntables:\n  metrics:\n    target: fleet.perf_samples\n    columns:\n"
                       "      metric: {from: name}\n", "field(s) sampled_at of fleet.perf_samples are required"),
    "agent_key without key": ("version: 1\ntables:\n  heartbeats:\n    target: fleet.heartbeats\n    columns:\n"
                              "      agent: {from: agent_id, convert: agent_key}\n      received_at: {from: beat_at}\n",
                              "uses 'agent_key' but no table mapped onto fleet.agents names its 'key' column"),
    "billion laughs": ("a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nversion: 1\ntables: *c\n", "tables: Input should be a valid dictionary"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_or_hostile_mapping_is_refused_with_one_clear_line(case, dialect_file, tmp_path, db_env, capsys,
                                                                      query):
    text, expected = HOSTILE[case]
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    assert main(["migrate-sqlite", str(dialect_file), "--mapping", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert query("SELECT count(*) FROM fleet.legacy_sources") == [(0,)]       # nothing was read or written


def _job(path: Path, db_url: str, **config):
    import dagster as dg

    from agents_pipeline.defs.migration.jobs import SqliteMigrationConfig, sqlite_migration_job
    from agents_pipeline.platform.resources import PostgresResource

    with dg.instance_for_test() as instance:
        result = sqlite_migration_job.execute_in_process(
            run_config=dg.RunConfig(ops={"migrate_sqlite_file": SqliteMigrationConfig(path=str(path), **config)}),
            resources={"postgres": PostgresResource(url=db_url)}, instance=instance, raise_on_error=False)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        return result, logs


def test_job_fails_over_the_threshold_with_the_cli_line_and_applies_a_mapping(dialect_file, tmp_path, db_env,
                                                                                capsys, query):
    result, _ = _job(dialect_file, db_env)
    assert not result.success
    message = result.failure_data_for_node("migrate_sqlite_file").error.message
    capsys.readouterr()
    assert main(["migrate-sqlite", str(dialect_file), "--json"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("agents-pipeline: ")
    assert message.strip() == f"dagster._core.definitions.events.Failure: {line}"   # the same line
    assert "agents: 3 of 3 rows rejected" in message and "--write-mapping" in message
    assert _job(dialect_file, db_env, accept_rejects=True)[0].success

    _draft(dialect_file, tmp_path / "mapping.yaml", capsys)    # in the import folder, like the file
    result, logs = _job(dialect_file, db_env, mapping="mapping.yaml", source_name="mapped")
    assert result.success
    assert query("SELECT count(*) FROM fleet.perf_samples p JOIN fleet.legacy_sources s "
                 "ON s.source_id = p.legacy_source WHERE s.name = 'mapped'") == [(D.METRICS - 1,)]
    # progress as log lines (one per table every 10 s, and when it is done)
    assert any(line.startswith(f"performance_metrics: {D.METRICS} rows in ") for line in logs), logs
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text("version: 1\ntables: {}\n")
    result, _ = _job(dialect_file, db_env, mapping=str(outside))
    assert not result.success
    assert "AGENTS_PIPELINE_IMPORT_DIR" in result.failure_data_for_node("migrate_sqlite_file").error.message


@pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
def test_mapped_tables_store_the_same_rows_by_sqlite_and_by_the_converters(unit, dialect_file, tmp_path, capsys,
                                                                           monkeypatch, db_url, query):
    """The set-based path reads a mapped table through a co-routine (with epoch integers turned
    into ISO text in SQLite, their microseconds taken from the number); the per-value converters
    read the same view. Same rows, same sums, with epoch seconds (epoch_or_iso) and epoch
    milliseconds (epoch_ms)."""
    from agents_pipeline.defs.migration.fastpath import ENV
    from agents_pipeline.defs.migration.mapping import ViewFacts, load_mapping
    from agents_pipeline.defs.migration.runner import migrate_sqlite
    from agents_pipeline.defs.migration.source import LegacySource
    from agents_pipeline.defs.migration.tables import KNOWN

    if unit == "milliseconds":
        conn = sqlite3.connect(dialect_file)
        conn.execute("UPDATE heartbeats SET beat_at = beat_at * 1000 + id % 1000 WHERE typeof(beat_at) = 'integer'")
        conn.execute("UPDATE metrics SET recorded_at = recorded_at * 1000 + 999 WHERE typeof(recorded_at) = 'integer'")
        conn.commit()
        conn.close()
    out = tmp_path / "mapping.yaml"
    tables = _draft(dialect_file, out, capsys)["tables"]
    convert = "epoch_ms" if unit == "milliseconds" else "epoch_or_iso"   # the draft tells them apart by content
    assert tables["heartbeats"]["columns"]["received_at"] == {"from": "beat_at", "convert": convert}
    assert tables["metrics"]["columns"]["sampled_at"] == {"from": "recorded_at", "convert": convert}
    mapping = load_mapping(out)
    with LegacySource(dialect_file, mapping) as source:   # companions beside, documented columns listed
        assert source.view_facts["agent_heartbeats"] == ViewFacts(json_built=("metadata",), micros=("timestamp",),
                                                                  agent_ids=("agent_id",))
        assert set(source.tables["agent_heartbeats"].columns) == set(KNOWN["agent_heartbeats"].columns)
    assert migrate_sqlite(dialect_file, db_url, source_name="fast", mapping=mapping, batch_size=7).ok
    monkeypatch.setenv(ENV, "0")
    assert migrate_sqlite(dialect_file, db_url, source_name="slow", mapping=mapping, batch_size=7).ok
    rows = {}
    for name in ("fast", "slow"):
        rows[name] = (
            query("SELECT h.legacy_id, h.received_at, a.name, h.kind, h.message, h.payload::text FROM fleet.heartbeats h "
                  "JOIN fleet.agents a USING (agent_id) JOIN fleet.legacy_sources s ON s.source_id = h.legacy_source "
                  "WHERE s.name = %s ORDER BY 1", (name,)),
            query("SELECT p.legacy_id, p.sampled_at, a.name, p.metric, p.value FROM fleet.perf_samples p "
                  "JOIN fleet.agents a USING (agent_id) JOIN fleet.legacy_sources s ON s.source_id = p.legacy_source "
                  "WHERE s.name = %s ORDER BY 1", (name,)),
            query("SELECT table_name, rows_read, rows_written, rows_rejected, checksum FROM fleet.legacy_progress g "
                  "JOIN fleet.legacy_sources s USING (source_id) WHERE s.name = %s AND table_name <> 'agents' "
                  "ORDER BY 1", (name,)))
    assert rows["fast"] == rows["slow"]
    assert len(rows["fast"][0]) == D.HEARTBEATS and len(rows["fast"][1]) == D.METRICS - 1
    extra = timedelta(milliseconds=1) if unit == "milliseconds" else timedelta(0)   # heartbeat 1: an epoch number
    assert rows["fast"][0][0][1] == datetime.fromtimestamp(D.EPOCH_2025_01_20 + 60, UTC) + extra
