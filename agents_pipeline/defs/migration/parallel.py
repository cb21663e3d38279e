"""The three big history tables (heartbeats, metrics, conversations), loaded side by side.

One Python process converts at most one core's worth of rows, so each big table gets its own
worker process with its own PostgreSQL connection. The snapshot stays consistent because this
runs only for files in rollback-journal mode: the coordinating process holds its SQLite read
transaction (a SHARED lock) for the whole run, so no writer can commit, and every worker's read
sees the same database. WAL files, where writers can commit beside readers, are read by the
coordinator alone. Verification compares the coordinator's counts with what was loaded either way.

Safety when the coordinator is killed: workers are plain subprocesses (no inherited pipes keep
them alive), exit within half a second when their parent dies (an
uncommitted batch is rolled back with their session), and each holds a per-table advisory lock
that a resumed run waits for, so an orphan can never commit a batch the next run also loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from agents_pipeline.defs.migration.loader import TableCounts, TableLoader
from agents_pipeline.defs.migration.mapping import Mapping, parse_mapping
from agents_pipeline.defs.migration.mapping import to_dict as mapping_dict
from agents_pipeline.defs.migration.parts import Part
from agents_pipeline.defs.migration.report import TableReport
from agents_pipeline.defs.migration.session import MigrationError, connect
from agents_pipeline.defs.migration.source import LegacySource
from agents_pipeline.defs.migration.tables import KNOWN, Context
from agents_pipeline.defs.migration.verify import verify_table

PARALLEL_TABLES = ("agent_heartbeats", "performance_metrics", "llm_conversations")
LOCK_WAIT = "60s"


def table_lock(conn, source_id: int, part: Part) -> None:
    """Waits (up to a minute) for any other loader of this source's table range, e.g. an orphan."""
    key = f"{source_id}:{part.table}" + (f"#{part.part}" if part.part else "")
    with conn, conn.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
        cur.execute("SELECT pg_advisory_lock(hashtext('legacy-table'), hashtext(%s))", (key,))


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


VERIFIED_FIELDS = ("source_rows", "read", "written", "rejected", "checksum_ok", "verified", "notes")


def load_table(path: str, url: str, part: Part, ctx: Context, batch_size: int,
               parent: int, mapping: Mapping | None = None) -> tuple[TableCounts, dict]:
    """Runs in a worker process: one legacy table (or one range of it), start (or resume point)
    to end, then its verification, so that it overlaps with the tables still loading in the
    other workers (the snapshot is the coordinator's: no writer can commit while it holds its
    read lock)."""
    table = part.table
    _watch_parent(parent)
    os.environ["AGENTS_PIPELINE_MIGRATION_WORKER"] = "1"  # the kill hook then takes the parent too
    def progress(name: str, rows: int) -> None:   # one line per batch to the coordinator
        print(json.dumps({"progress": rows}), flush=True)

    with LegacySource(Path(path), mapping) as source:
        conn = connect(url)
        try:
            table_lock(conn, ctx.source_id, part)
            counts = TableLoader(conn, source, KNOWN[table], ctx, batch_size, dry_run=False, progress=progress,
                                 part=part).run()
            row = TableReport(table, f"fleet.{KNOWN[table].target}",
                              source_rows=source.count(table, part.lower, part.until_rowid))
            verify_table(conn, KNOWN[table], ctx.source_id, row, part)
            return counts, {name: getattr(row, name) for name in VERIFIED_FIELDS}
        finally:
            conn.close()


def start_workers(parts: list[Part]) -> dict[Part, subprocess.Popen]:
    """One ``python -m agents_pipeline.defs.migration.parallel`` per table range (a plain subprocess: no
    multiprocessing, so no re-import of the caller's __main__ and no inherited pipes), started
    before the coordinator resolves the file's agents: their start-up (0.2 s of imports each)
    then overlaps with that scan. Each waits for its job on stdin (``load_in_parallel``); one
    whose stdin closes without a job exits."""
    return {part: subprocess.Popen([sys.executable, "-m", "agents_pipeline.defs.migration.parallel", part.table,
                                    str(part.part), str(part.first_rowid),
                                    "" if part.until_rowid is None else str(part.until_rowid)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for part in parts}


def stop_workers(procs: dict[Part, subprocess.Popen]) -> None:
    """Ends workers that never got their job (the coordinator failed before loading)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def load_in_parallel(procs: dict[Part, subprocess.Popen], path: Path, url: str, ctx: Context, batch_size: int,
                     mapping: Mapping | None = None, progress: Callable[[str, int], None] | None = None,
                     ) -> dict[Part, tuple[TableCounts, dict]]:
    """Hands each started worker (``start_workers``) its job. A worker prints a progress line
    per batch and its result last; a thread per worker reads them."""
    job = {"path": str(path), "url": url, "batch_size": batch_size, "parent": os.getpid(),
           "mapping": None if mapping is None else mapping_dict(mapping),
           "ctx": {"source_id": ctx.source_id, "source_name": ctx.source_name, "now": ctx.now.isoformat(),
                   "agents": ctx.agents}}
    for proc in procs.values():
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
        except BrokenPipeError:   # it died already: reported with its exit status below
            pass
    answers: dict[Part, dict] = {}

    def read(part: Part, proc: subprocess.Popen) -> None:
        answer: dict = {}
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and "progress" in message:
                if progress is not None:
                    progress(part.table, int(message["progress"]))
            elif isinstance(message, dict):
                answer = message
        answers[part] = answer

    readers = [threading.Thread(target=read, args=(part, proc), name=f"worker-{part.label}", daemon=True)
               for part, proc in procs.items()]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    results: dict[Part, tuple[TableCounts, dict]] = {}
    failures = []
    for part, proc in procs.items():
        proc.wait()
        answer = answers.get(part, {})
        if proc.returncode == 0 and "counts" in answer and "verified" in answer:
            results[part] = (TableCounts(**answer["counts"]), answer["verified"])
        else:
            failures.append(f"{part.label}: {answer.get('error') or f'worker exited with status {proc.returncode}'}")
    if failures:
        raise MigrationError("loading failed: " + "; ".join(failures))
    return results


def _worker_main(table: str, part: str, first_rowid: str, until_rowid: str) -> int:
    """A worker, as ``start_workers`` starts it: its table and range on the command line
    (an empty ``until_rowid``: no end), its job on stdin."""
    text = sys.stdin.read()
    if not text.strip():   # the coordinator stopped before handing out the jobs
        return 1
    job = json.loads(text)
    raw = job["ctx"]
    ctx = Context(source_id=raw["source_id"], source_name=raw["source_name"],
                  now=datetime.fromisoformat(raw["now"]), agents=raw["agents"])
    try:
        mapping = None if job.get("mapping") is None else parse_mapping(job["mapping"])
        rows = Part(table, int(part), int(first_rowid), int(until_rowid) if until_rowid else None)
        counts, verified = load_table(job["path"], job["url"], rows, ctx, job["batch_size"], job["parent"], mapping)
    except Exception as exc:  # reported to the coordinator in one line
        print(json.dumps({"error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}))
        return 1
    print(json.dumps({"counts": asdict(counts), "verified": verified}))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(*sys.argv[1:5]))
