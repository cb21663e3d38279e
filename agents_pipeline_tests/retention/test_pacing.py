"""The archival's pace (AGENTS_PIPELINE_ARCHIVE_PACE): chunked, paused work that exports,
fingerprints and loads exactly what the unpaced path does, and the parallel workers that a
reniced session gives up."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from psycopg2 import sql

from agents_pipeline.defs.retention import archiver, parquet_io, priority, store
from agents_pipeline.defs.retention.partitions import partition_ident
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline.defs.retention.units import connect, create_temp_like
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, rows_of, seed_heartbeats

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats WHERE received_at >= %s AND received_at < %s::date + 1"


def test_the_pacer_rests_in_proportion_to_the_work():
    pacer = parquet_io.Pacer(25)
    started = time.perf_counter()
    for _ in range(3):
        with pacer.chunk():
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    assert pacer.chunks == 3 and pacer.worked >= 0.06
    assert pacer.slept == pytest.approx(3 * pacer.worked)         # works 25 % of the time
    assert elapsed >= pacer.worked + pacer.slept >= 0.24
    flat = parquet_io.Pacer(100)
    with flat.chunk():
        time.sleep(0.01)
    assert flat.chunks == 1 and flat.slept == 0.0
    for bad in (0, 101, -5):
        with pytest.raises(ValueError, match="1 to 100"):
            parquet_io.Pacer(bad)


def test_equal_rows_make_equal_files_however_they_are_chunked(tmp_path):
    """Pages are cut where an array's chunk ends: the writer joins the chunks first, so an export
    read in 128 kB chunks and one read whole write the same bytes (300,000 rows: many pages)."""
    columns = [parquet_io.Column("n", "bigint"), parquet_io.Column("s", "text"), parquet_io.Column("j", "jsonb")]
    n = 300_000
    whole = pa.Table.from_arrays(
        [pa.array(range(n), pa.int64()), pa.array([f"row {i} " * (i % 7) for i in range(n)]),
         pa.array([None if i % 3 else f'{{"k": {i}}}' for i in range(n)])], schema=parquet_io.schema_for(columns))
    pieces = pa.concat_tables([whole.slice(i, 1777) for i in range(0, n, 1777)])
    assert pieces.column("s").num_chunks > 100 and pieces.equals(whole)
    one, size = parquet_io.write_parquet(whole, tmp_path / "whole.parquet")
    other, _ = parquet_io.write_parquet(pieces, tmp_path / "pieces.parquet")
    assert one == other and size > 1_000_000
    assert parquet_io.read_parquet(tmp_path / "pieces.parquet", one, n).equals(whole)


def test_the_pace_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(archiver.PACE_ENV, raising=False)
    assert archiver.pace().percent == archiver.DEFAULT_PACE == 25
    monkeypatch.setenv(archiver.PACE_ENV, "20")
    assert archiver.pace().percent == 20
    for bad in ("fast", "0", "150", "12.5"):
        monkeypatch.setenv(archiver.PACE_ENV, bad)
        with pytest.raises(ValueError, match=archiver.PACE_ENV):
            archiver.pace()


def test_a_bad_pace_stops_the_archival_before_it_starts(db_url, archive_dir, monkeypatch):
    seed_heartbeats(db_url, OLD_DAY, 100)
    monkeypatch.setenv(archiver.PACE_ENV, "0")
    with pytest.raises(ValueError, match=archiver.PACE_ENV):
        archiver.archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert len(rows_of(db_url, HB, (OLD_DAY, OLD_DAY))) == 100
    assert execute(db_url, "SELECT count(*) FROM fleet.archive_ledger") == [(0,)]
    assert not archive_dir.exists() or not any(archive_dir.rglob("*.parquet"))


def test_block_ranges_cover_the_relation_in_order(db_url, monkeypatch):
    seed_heartbeats(db_url, OLD_DAY, 3000)
    with connect(db_url) as conn, conn.cursor() as cur:
        rel = partition_ident("heartbeats", OLD_DAY)
        cur.execute(sql.SQL("SELECT pg_relation_size({}::regclass) / 8192").format(sql.Literal(rel.as_string(conn))))
        blocks = cur.fetchone()[0]
        ranges = parquet_io.block_ranges(cur, rel, chunk_blocks=4)
        assert blocks > 8 and len(ranges) == (blocks + 3) // 4
        counts = []
        for cond in ranges:
            cur.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(rel, cond))
            counts.append(cur.fetchone()[0])
        assert sum(counts) == 3000 and all(counts)
        assert ranges[-1].as_string(conn) == f"t.ctid >= '({(len(ranges) - 1) * 4},0)'::tid"   # open-ended
        empty = create_temp_like(cur, "rows", "heartbeats")
        assert [c.as_string(conn) for c in parquet_io.block_ranges(cur, empty)] == ["t.ctid >= '(0,0)'::tid"]


def test_paced_export_load_and_fingerprints_equal_the_unpaced_ones(db_url, tmp_path, monkeypatch):
    """Same rows, same order, same fingerprints, byte-identical Parquet file."""
    seed_heartbeats(db_url, OLD_DAY, 6000)
    monkeypatch.setattr(parquet_io, "CHUNK_BLOCKS", 4)
    monkeypatch.setattr(parquet_io, "LOAD_CHUNK_ROWS", 700)
    rel = partition_ident("heartbeats", OLD_DAY)
    with connect(db_url) as conn:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            columns = parquet_io.table_columns(cur, "heartbeats")
            whole = parquet_io.export_rows(cur, rel, columns)
            whole_fp = parquet_io.fingerprint(cur, rel)
            pacer = parquet_io.Pacer(100)
            paced = parquet_io.export_rows(cur, rel, columns, pacer)
            paced_fp = parquet_io.fingerprint(cur, rel, pacer)
            ranges = len(parquet_io.block_ranges(cur, rel, 4))
        conn.commit()
        assert ranges > 5 and pacer.chunks == 2 * ranges
        assert paced.num_rows == whole.num_rows == 6000
        assert paced.equals(whole) and paced.schema.equals(whole.schema, check_metadata=True)
        assert paced_fp == whole_fp and whole_fp.startswith("6000:")
        digest_whole, _ = parquet_io.write_parquet(whole, tmp_path / "whole.parquet")
        digest_paced, _ = parquet_io.write_parquet(paced, tmp_path / "paced.parquet")
        assert digest_paced == digest_whole

        reads = parquet_io.Pacer(100)
        back = parquet_io.read_parquet(tmp_path / "paced.parquet", digest_paced, 6000, reads)
        assert reads.chunks == 10                                         # 9 batches of 700, then the end
        assert back.equals(parquet_io.read_parquet(tmp_path / "whole.parquet", digest_whole, 6000))
        assert back.schema.equals(whole.schema, check_metadata=True)
        with conn.cursor() as cur:
            target = create_temp_like(cur, "check", "heartbeats")
            loads = parquet_io.Pacer(100)
            assert parquet_io.load_rows(cur, back, target, columns, loads) == 6000
            assert loads.chunks == 9                                      # 6000 rows by 700
            assert parquet_io.fingerprint(cur, target, parquet_io.Pacer(100)) == whole_fp
            assert parquet_io.fingerprint(cur, target) == whole_fp
        conn.commit()


def test_a_paced_archival_pauses_and_archives_the_same_file(db_url, archive_dir, monkeypatch):
    seed_heartbeats(db_url, OLD_DAY, 4000)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    monkeypatch.setattr(parquet_io, "CHUNK_BLOCKS", 4)
    monkeypatch.setenv(archiver.PACE_ENV, "100")
    flat = archiver.archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert flat.outcome == "archived" and flat.rows == 4000 and flat.paused_s == 0.0
    flat_sha = store.read_manifest(archive_dir, "heartbeats", OLD_DAY).files[0].sha256
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    # The restored day is archived again (its hold lifted) at a quarter pace: same file.
    execute(db_url, "DELETE FROM fleet.retention_holds")
    monkeypatch.setenv(archiver.PACE_ENV, "25")
    slow = archiver.archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert slow.outcome == "archived" and slow.rows == 4000
    assert slow.paused_s > 0.0 and slow.seconds > slow.paused_s
    manifest = store.read_manifest(archive_dir, "heartbeats", OLD_DAY)
    assert manifest.generation == 2 and manifest.files[0].sha256 == flat_sha
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == []
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before


@pytest.mark.parametrize("niceness, workers", [("0", "2"), ("19", "0")])
def test_a_reniced_session_gives_up_parallel_workers(db_url, monkeypatch, niceness, workers):
    """Parallel workers are processes of their own at the server's priority: a session that
    yields the CPU plans no Gather, even on a table forced to parallel scans."""
    seed_heartbeats(db_url, OLD_DAY, 2000)
    rel = partition_ident("heartbeats", OLD_DAY)
    monkeypatch.setenv(priority.NICENESS_ENV, niceness)
    with connect(db_url) as conn:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER TABLE {} SET (parallel_workers = 2)").format(rel))
        conn.commit()
        done = []
        worker = threading.Thread(target=lambda: done.append(priority.yield_cpu_to_writers(conn)))
        worker.start()
        worker.join()
        assert done[0].get("serial", False) == (niceness != "0")
        with conn.cursor() as cur:
            cur.execute("SHOW max_parallel_workers_per_gather")
            assert cur.fetchone()[0] == workers
            cur.execute("SET parallel_setup_cost = 0")
            cur.execute("SET parallel_tuple_cost = 0")
            cur.execute("SET min_parallel_table_scan_size = 0")
            cur.execute(sql.SQL("EXPLAIN SELECT count(*), sum(fleet.row_fingerprint(t::text)) FROM {} t").format(rel))
            plan = "\n".join(r[0] for r in cur.fetchall())
        conn.rollback()
        assert ("Gather" in plan) == (workers != "0")

