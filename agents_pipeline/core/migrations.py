"""Numbered SQL migrations from ``sql/``: applied in order, each in its own transaction,
under an advisory lock so that two starters never race, and recorded with a checksum so
that an edited, already-applied file is reported instead of silently skipped.

Replaceable functions live in ``sql/functions/``, one file per function (its one home): after
the numbered migrations, every file whose checksum changed is applied again, all of them in one
transaction that ends with ``fleet.apply_security()``, so a new SECURITY DEFINER function is
never executable by PUBLIC, not even for a moment. A file that changes a signature drops the
old one itself, in that same transaction.

Plain files and a 60-line runner rather than Alembic: the schema is SQL-first (functions,
partitions, roles) and the agent side must not import SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agents_pipeline.core import advisory
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.settings import SQL_DIR

LOCK_KEY = 0x61676E7473  # "agnts": one advisory lock for every migrator of this schema
ROLE_PREFIX_ENV = "AGENTS_PIPELINE_ROLE_PREFIX"
LOCK_WAIT_S = 60.0
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_FUNCTION_NAME = re.compile(r"^[a-z0-9_]+\.sql$")


def _with_prefix(text: str) -> str:
    # Roles are global to a server, so their names carry a configurable prefix.
    prefix = os.environ.get(ROLE_PREFIX_ENV, "agents_pipeline")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,30}", prefix):
        raise ConfigurationError(f"{ROLE_PREFIX_ENV} must be a lower-case SQL identifier, got {prefix!r}")
    return text.replace("@ROLE_PREFIX@", prefix)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return _with_prefix(self.path.read_text(encoding="utf-8"))

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def available(sql_dir: Path = SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise ConfigurationError(f"schema folder {sql_dir} not found")
    found = []
    for path in sorted(sql_dir.iterdir()):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"two migrations share a number in {sql_dir}")
    return found


def latest_version(sql_dir: Path = SQL_DIR) -> int:
    migrations = available(sql_dir)
    return migrations[-1].version if migrations else 0


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS public.agents_pipeline_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def applied(conn) -> dict[int, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.agents_pipeline_migrations')")
        if cur.fetchone()[0] is None:
            return {}
        cur.execute("SELECT version, checksum FROM public.agents_pipeline_migrations")
        return dict(cur.fetchall())


@contextmanager
def _transaction(conn) -> Iterator[None]:
    """One transaction on an autocommit connection: committed whole, or rolled back whole."""
    conn.autocommit = False
    try:
        yield
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True


def migrate(conn, sql_dir: Path = SQL_DIR) -> list[str]:
    """Applies the pending migrations over a psycopg2 connection; returns their names."""
    conn.autocommit = True
    done: list[str] = []
    with conn.cursor() as cur, advisory.session_lock(cur, LOCK_KEY, what="the schema migration", wait_s=LOCK_WAIT_S):
        # Only when missing: CREATE ... IF NOT EXISTS still needs CREATE on schema public,
        # which a login holding just the pipeline role lacks (it may check, not migrate).
        cur.execute("SELECT to_regclass('public.agents_pipeline_migrations')")
        if cur.fetchone()[0] is None:
            cur.execute(_CREATE_TABLE)
        already = applied(conn)
        for mig in available(sql_dir):
            if mig.version in already:
                if already[mig.version] != mig.checksum:
                    raise ConfigurationError(
                        f"migration {mig.path.name} changed after it was applied; "
                        "add a new numbered file instead of editing an applied one"
                    )
                continue
            with _transaction(conn):
                cur.execute(mig.sql)
                cur.execute(
                    "INSERT INTO public.agents_pipeline_migrations (version, name, checksum) "
                    "VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
            done.append(mig.path.name)
        done += _apply_functions(conn, cur, sql_dir / "functions")
    return done


_CREATE_FUNCTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS public.agents_pipeline_functions (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def function_files(functions_dir: Path) -> dict[str, Path]:
    if not functions_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(functions_dir.iterdir()) if _FUNCTION_NAME.match(p.name)}


def _apply_functions(conn, cur, functions_dir: Path) -> list[str]:
    """Re-applies the function files whose checksum changed, in one transaction."""
    files = function_files(functions_dir)
    if not files:
        return []
    cur.execute("SELECT to_regclass('public.agents_pipeline_functions')")
    if cur.fetchone()[0] is None:
        cur.execute(_CREATE_FUNCTIONS_TABLE)
    cur.execute("SELECT name, checksum FROM public.agents_pipeline_functions")
    known = dict(cur.fetchall())
    changed = {name: path for name, path in files.items()
               if known.get(name) != hashlib.sha256(path.read_bytes()).hexdigest()}
    if not changed:
        return []
    with _transaction(conn):
        for name, path in changed.items():
            cur.execute(_with_prefix(path.read_text(encoding="utf-8")))
            cur.execute(
                "INSERT INTO public.agents_pipeline_functions (name, checksum) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
                (name, hashlib.sha256(path.read_bytes()).hexdigest()),
            )
        cur.execute("SELECT fleet.apply_security()")
    return [f"functions/{name}" for name in changed]


def current_version(conn) -> int:
    versions = applied(conn)
    return max(versions) if versions else 0
