"""``agents-pipeline db backup [PATH]`` and ``db restore PATH`` (target from the environment).

An archive is not a backup: this is the backup. pg_dump's custom format from the binaries of
the server's own major version (an older pg_dump refuses a newer server; a newer one writes
files an older pg_restore cannot read). The dump runs on a snapshot exported from a
transaction that also counts and fingerprints every table, and those figures are written
beside the dump (``.json``), so a restore proves that it brought back the same rows. The
password reaches pg_dump/pg_restore through PGPASSWORD in their environment, never argv, and
for the same reason a restore's target URL comes from ``AGENTS_PIPELINE_RESTORE_DATABASE_URL``,
never from the command line (``ps`` shows every user the arguments of every process). The dump
and its sidecar hold every row of the fleet: they are written 0600 in a 0700 folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import sql

from agents_pipeline.console import Progress
from agents_pipeline.core.dsn import connect_kwargs, mask_url
from agents_pipeline.core.errors import ConfigurationError, ValidationError, VerificationFailed
from agents_pipeline.defs.retention.parquet_io import fingerprint
from agents_pipeline.defs.retention.private import open_private, private_dir
from agents_pipeline.defs.retention.units import connect

RESTORE_URL_ENV = "AGENTS_PIPELINE_RESTORE_DATABASE_URL"
_LIBPQ_ENV = {
    "host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS",
    "application_name": "PGAPPNAME", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE", "passfile": "PGPASSFILE",
}


def libpq_env(url: str) -> dict[str, str]:
    """The environment for a libpq tool: the caller's, less any PG* variable, plus the URL's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in connect_kwargs(url).items():
        if key in _LIBPQ_ENV:
            env[_LIBPQ_ENV[key]] = str(value)
    return env


def server_major(url: str) -> int:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        return int(cur.fetchone()[0]) // 10000


def pg_tool(name: str, major: int) -> Path:
    """pg_dump / pg_restore of exactly the server's major version."""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{name}")]
    if os.environ.get("AGENTS_PIPELINE_PG_BIN"):
        candidates.insert(0, Path(os.environ["AGENTS_PIPELINE_PG_BIN"]) / name)
    for path in candidates:
        if path.exists():
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False).stdout
            found = re.search(r"\)\s+(\d+)", out)   # "pg_dump (PostgreSQL) 15.18 (Debian ...)"
            if found and int(found.group(1)) == major:
                return path
    raise ConfigurationError(
        f"{name} for PostgreSQL {major} not found (looked in {', '.join(map(str, candidates))}); "
        f"install it: apt-get install postgresql-client-{major}")


def table_fingerprints(cur, progress: Progress | None = None) -> dict[str, str]:
    """rows:fingerprint of every table of the product (partitions counted in their parent)."""
    cur.execute("""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND (n.nspname = 'fleet' OR (n.nspname = 'public' AND c.relname = 'agents_pipeline_migrations'))
        ORDER BY 1, 2""")
    names = cur.fetchall()
    out = {}
    for schema, table in names:
        out[f"{schema}.{table}"] = fp = fingerprint(cur, sql.Identifier(schema, table))
        if progress is not None:
            progress.update(int(fp.split(":")[0]))
    return out


def estimated_rows(cur) -> dict[str, int]:
    """The planner's row estimate of every table pg_dump writes, by its qualified name (free: no
    scan). Only for the progress of a backup, so an estimate is enough."""
    cur.execute("""
        SELECT n.nspname || '.' || c.relname, greatest(c.reltuples, 0)::bigint
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'
          AND (n.nspname = 'fleet' OR (n.nspname = 'public' AND c.relname = 'agents_pipeline_migrations'))""")
    return dict(cur.fetchall())


_DUMPING = re.compile(r'dumping contents of table "([^"]+)"')


def _dump(args: list[str], env: dict[str, str], estimates: dict[str, int], progress: Progress | None) -> None:
    """pg_dump with ``--verbose``, read line by line: each table it starts dumping moves
    ``progress`` on by the estimated rows of the one before (pg_dump reports no row counts)."""
    proc = subprocess.Popen([*args, "--verbose"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, umask=0o077)
    lines: list[str] = []
    current = None
    assert proc.stderr is not None
    for line in proc.stderr:
        found = _DUMPING.search(line)
        if found is None:
            lines.append(line)
            continue
        if progress is not None and current is not None:
            progress.update(estimates.get(current, 0))
        current = found.group(1)
    if proc.wait() != 0:
        tail = " | ".join(line.strip() for line in lines[-3:])
        raise ValidationError(f"pg_dump failed: {mask_url(tail)}")
    if progress is not None and current is not None:
        progress.update(estimates.get(current, 0))


def _run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    # umask 077: whatever a tool creates (pg_dump's file, if it re-creates it) is its owner's only.
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False, umask=0o077)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ValidationError(f"{what} failed: {mask_url(tail)}")
    return proc


def default_backup_path() -> Path:
    from agents_pipeline.core.settings import PROJECT_DIR

    return PROJECT_DIR / "backups" / f"agents_pipeline-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"


def _write_private(path: Path, text: str) -> None:
    """``path`` replaced atomically by ``text``, mode 0600 from its first byte."""
    tmp = path.with_name(path.name + ".partial")
    with os.fdopen(open_private(tmp), "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def backup(url: str, path: Path | None = None, progress: Progress | None = None) -> tuple[Path, dict]:
    """Dumps the database to ``path``; returns the path and the sidecar's contents. ``progress``
    is told of the rows dumped (from the planner's estimates), then of the rows checksummed.

    The folder is created 0700 when missing (the default ``<project>/backups`` is set to 0700
    even when it exists: the product made it); the dump and its sidecar are 0600."""
    default = default_backup_path()
    path = Path(path) if path else default
    if path.is_dir():
        path = path / default.name
    private_dir(path.parent, path.parent, own_base=path.parent == default.parent)
    major = server_major(url)
    pg_dump = pg_tool("pg_dump", major)
    tmp = path.with_name(path.name + ".partial")
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT pg_export_snapshot(), current_database(), version()")
        snapshot, dbname, version = cur.fetchone()
        estimates = estimated_rows(cur)
        try:
            os.close(open_private(tmp))   # pg_dump truncates it, keeping the 0600 (a stale one's too)
            # pg_dump reads the same snapshot while this transaction stays open.
            if progress is not None:
                progress.stage("dump", sum(estimates.values()) or None)
            _dump([str(pg_dump), "--format=custom", "--compress=6", f"--snapshot={snapshot}", f"--file={tmp}"],
                  libpq_env(url), estimates, progress)
            if progress is not None:
                progress.stage("checksums", sum(estimates.values()) or None)
            tables = table_fingerprints(cur, progress)
            conn.rollback()
            _run([str(pg_tool("pg_restore", major)), "--list", str(tmp)], libpq_env(url), "checking the dump")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)
    info = {"created_at": datetime.now(UTC).isoformat(), "database": dbname,
            "server_version": version, "bytes": path.stat().st_size, "tables": tables}
    _write_private(path.with_name(path.name + ".json"), json.dumps(info, indent=2))
    return path, info


def restore(path: Path, url: str) -> dict:
    """Restores a dump into an empty database at ``url`` and compares it with the sidecar."""
    if not path.is_file():
        raise ValidationError(f"backup file {path} not found")
    major = server_major(url)
    pg_restore = pg_tool("pg_restore", major)
    env = libpq_env(url)
    _run([str(pg_restore), "--list", str(path)], env, f"reading {path} (not a pg_dump custom-format file?)")
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'fleet' OR (n.nspname = 'public' AND c.relname = 'agents_pipeline_migrations')")
        if cur.fetchone()[0]:
            raise ValidationError(
                f"database {mask_url(url)} already holds the product's schema; restore into an empty "
                f"database (createdb a new one and set {RESTORE_URL_ENV} to its URL) — nothing was changed")
    dbname = str(connect_kwargs(url)["dbname"])
    _run([str(pg_restore), "--single-transaction", "--exit-on-error", "--no-owner", f"--dbname={dbname}",
          str(path)], env, "pg_restore")
    sidecar = path.with_name(path.name + ".json")
    expected = json.loads(sidecar.read_text())["tables"] if sidecar.is_file() else None
    with connect(url) as conn, conn.cursor() as cur:
        actual = table_fingerprints(cur)
        conn.rollback()
    mismatched = sorted(t for t in (expected or {}) if expected[t] != actual.get(t))
    if mismatched:
        raise VerificationFailed(f"restored database differs from the backup in {', '.join(mismatched)}")
    return {"tables": actual, "verified": expected is not None}


def backup_command(args: argparse.Namespace) -> int:
    from agents_pipeline.core.shared_state import resolve_url

    with Progress("db backup") as progress:   # a bar only when stderr is a terminal
        path, info = backup(resolve_url(), Path(args.path) if args.path else None, progress)
    rows = sum(int(v.split(":")[0]) for v in info["tables"].values())
    if getattr(args, "json", False):
        from agents_pipeline.console import print_json

        print_json({"path": str(path), "sidecar": f"{path}.json", "bytes": info["bytes"],
                    "tables": len(info["tables"]), "rows": rows, "created_at": info["created_at"]})
        return 0
    print(f"backup written to {path} ({info['bytes']} bytes, {len(info['tables'])} tables, {rows} rows; "
          f"counts and checksums in {path.name}.json)")
    return 0


def restore_target(into: str | None) -> str:
    """The URL to restore into: ``AGENTS_PIPELINE_RESTORE_DATABASE_URL``, else the shared-state
    database. A URL given on the command line (the old ``--into URL``) is refused before
    anything is read: its password would be in ``ps`` and the shell's history."""
    from agents_pipeline.core.shared_state import resolve_url

    if into is not None:
        raise ConfigurationError(
            f"db restore --into URL is refused: a URL on the command line shows its password to every "
            f"user of this host (ps) and stays in the shell's history; set {RESTORE_URL_ENV} to the URL of "
            f"the database to restore into and run `agents-pipeline db restore PATH` — nothing was restored")
    return os.environ.get(RESTORE_URL_ENV, "").strip() or resolve_url()


def restore_command(args: argparse.Namespace) -> int:
    url = restore_target(getattr(args, "into", None))
    result = restore(Path(args.path), url)
    rows = sum(int(v.split(":")[0]) for v in result["tables"].values())
    check = "row counts and checksums match the backup" if result["verified"] else "no .json beside it: not compared"
    if getattr(args, "json", False):
        from agents_pipeline.console import print_json

        print_json({"path": str(args.path), "into": mask_url(url), "tables": len(result["tables"]), "rows": rows,
                    "verified": result["verified"]})
        return 0
    print(f"restored {args.path} into {mask_url(url)}: {len(result['tables'])} tables, {rows} rows; {check}")
    return 0


def table_fingerprints_for(url: str) -> dict[str, str]:
    with connect(url) as conn, conn.cursor() as cur:
        result = table_fingerprints(cur)
        conn.rollback()
        return result
