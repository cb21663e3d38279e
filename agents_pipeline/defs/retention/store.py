"""The archive's bookkeeping: manifest files beside the Parquet files, the ledger and the holds.

The manifest is the archive's own truth (an archive folder copied elsewhere is restorable
without the database); the ledger in fleet.archive_ledger is the state machine that lets a run
killed at any step be finished by the next one; fleet.retention_holds keeps restored days.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from agents_pipeline.defs.retention.parquet_io import FORMAT_VERSION, ArchiveFileError, fsync_dir
from agents_pipeline.defs.retention.policy import table_spec
from agents_pipeline.defs.retention.private import open_private, private_dir


def unit_dir(root: Path, table: str, day: date) -> Path:
    return root / table / f"{day:%Y}" / f"{day:%m}"


def make_unit_dir(root: Path, table: str, day: date) -> Path:
    """The day's folder, created (or tightened) to 0700 from ``root`` down (``private.py``)."""
    return private_dir(unit_dir(root, table, day), root)


def manifest_path(root: Path, table: str, day: date) -> Path:
    return unit_dir(root, table, day) / f"{table}_{day:%Y%m%d}.manifest.json"


def data_file_name(table: str, day: date, member: str, generation: int = 1) -> str:
    """``heartbeats_20250101.parquet``; dependent rows: ``alerts_20250101.notifications.parquet``.

    A day archived again (after a restore) gets new names (``.g2``): the manifest is switched to
    them only once they are written, so a crash in between leaves the old files and manifest whole.
    """
    suffix = "" if member == table else f".{member}"
    gen = "" if generation <= 1 else f".g{generation}"
    return f"{table}_{day:%Y%m%d}{suffix}{gen}.parquet"


def remove_unreferenced(root: Path, manifest: Manifest) -> None:
    """Data files of earlier generations, or of a run killed before its manifest was written."""
    folder = unit_dir(root, manifest.table, manifest.day)
    keep = {f.file for f in manifest.files}
    for path in folder.glob(f"{manifest.table}_{manifest.day:%Y%m%d}*.parquet"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


@dataclass
class FileEntry:
    table: str
    file: str
    rows: int
    sha256: str
    bytes: int
    content_checksum: str
    columns: list[dict]


@dataclass
class Manifest:
    table: str
    day: date
    retention_days: int
    files: list[FileEntry]
    created_at: str = ""
    generation: int = 1

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files if f.table == self.table)

    def entry(self, member: str) -> FileEntry | None:
        return next((f for f in self.files if f.table == member), None)

    def to_json(self) -> str:
        return json.dumps({
            "format_version": FORMAT_VERSION, "table": self.table, "day": self.day.isoformat(),
            "retention_days": self.retention_days, "created_at": self.created_at,
            "generation": self.generation, "files": [vars(f) for f in self.files],
        }, indent=2)


def write_manifest(root: Path, manifest: Manifest) -> Path:
    path = manifest_path(root, manifest.table, manifest.day)
    make_unit_dir(root, manifest.table, manifest.day)
    manifest.created_at = datetime.now(UTC).isoformat()
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with os.fdopen(open_private(tmp), "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def read_manifest(root: Path, table: str, day: date) -> Manifest | None:
    """The day's manifest, None when there is none; a damaged one is refused, and so is one
    that is not this day's or names a file other than the day's own (``check_manifest``)."""
    path = manifest_path(root, table, day)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(
            table=doc["table"], day=date.fromisoformat(doc["day"]),
            retention_days=int(doc["retention_days"]), created_at=doc.get("created_at", ""),
            generation=int(doc.get("generation", 1)),
            files=[FileEntry(**f) for f in doc["files"]])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveFileError(f"archive manifest {path} is damaged: {exc}") from None
    problem = check_manifest(manifest, table, day)
    if problem:
        raise ArchiveFileError(f"archive manifest {path} is refused: {problem}; nothing was read or restored")
    return manifest


def _path_problem(name: object) -> str | None:
    """Why ``name`` is not a bare file name, or None."""
    if not isinstance(name, str) or not name:
        return f"file {name!r} is not a file name"
    if "\x00" in name:
        return f"file {name!r} contains a NUL character"
    if name.startswith("/"):
        return f"file {name!r} is an absolute path, not a file name in the day's folder"
    if ".." in name.split("/"):
        return f"file {name!r} climbs out of the day's folder ('..')"
    if "/" in name:
        return f"file {name!r} is a path, not a bare file name in the day's folder"
    return None


def check_manifest(manifest: Manifest, table: str, day: date) -> str | None:
    """Why a manifest must not be used for ``table``'s ``day``, or None.

    A manifest is data read from disk: whoever can write into the archive folder could make it
    name ``../../x``, an absolute path or another day's file, and a restore would then load rows
    from anywhere into the table. Only the archiver's own names are accepted: the day's folder,
    ``<table>_<YYYYMMDD>[.<dependent table>][.g<generation>].parquet`` (``data_file_name``)."""
    if manifest.table != table or manifest.day != day:
        return f"it is the manifest of {manifest.table} {manifest.day}, not of {table} {day}"
    members = {table, *(c.table for c in table_spec(table).children)}
    for entry in manifest.files:
        problem = _path_problem(entry.file)
        if problem:
            return problem
        if entry.table not in members:
            return f"file {entry.file!r} is said to hold {entry.table!r}, which is not part of the archive of {table}"
        expected = data_file_name(table, day, entry.table, manifest.generation)
        if entry.file != expected:
            return (f"file {entry.file!r} is not this day's file of {entry.table} (the archiver names it "
                    f"{expected!r})")
    return None


def remove_stale_temporaries(root: Path, table: str, day: date) -> None:
    """Half-written files of a killed run (never renamed into place)."""
    folder = unit_dir(root, table, day)
    if folder.is_dir():
        for tmp in folder.glob(f"{table}_{day:%Y%m%d}*.tmp-*"):
            tmp.unlink(missing_ok=True)


# -- ledger and holds ------------------------------------------------------------------------------

def ledger_status(cur, table: str, day: date) -> str | None:
    cur.execute("SELECT status FROM fleet.archive_ledger WHERE table_name = %s AND day = %s", (table, day))
    row = cur.fetchone()
    return row[0] if row else None


def set_ledger(cur, table: str, day: date, status: str, **fields) -> None:
    """Upserts the day's ledger row; only the named fields change."""
    allowed = {"row_count", "content_checksum", "manifest_path", "file_bytes", "retention_days",
               "archived_at", "restored_at", "remove_ms"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown ledger fields {sorted(unknown)}")
    cols = ["table_name", "day", "status", *fields]
    values = [table, day, status, *fields.values()]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ["status", *fields]) + ", updated_at = now()"
    placeholders = ", ".join(["%s"] * len(values))
    cur.execute(
        f"INSERT INTO fleet.archive_ledger ({', '.join(cols)}) VALUES ({placeholders}) "  # noqa: S608 - fixed names
        f"ON CONFLICT (table_name, day) DO UPDATE SET {updates}",
        values,
    )


def active_hold(cur, table: str, day: date) -> datetime | None:
    cur.execute(
        "SELECT held_until FROM fleet.retention_holds WHERE table_name = %s AND day = %s AND held_until > now()",
        (table, day))
    row = cur.fetchone()
    return row[0] if row else None


def hold_day(cur, table: str, day: date, days: float, reason: str) -> datetime:
    cur.execute(
        """INSERT INTO fleet.retention_holds (table_name, day, held_until, reason)
           VALUES (%s, %s, now() + make_interval(secs => %s), %s)
           ON CONFLICT (table_name, day) DO UPDATE
           SET held_until = greatest(fleet.retention_holds.held_until, EXCLUDED.held_until),
               reason = EXCLUDED.reason
           RETURNING held_until""",
        (table, day, days * 86400.0, reason))
    return cur.fetchone()[0]


def release_hold(cur, table: str, day: date) -> None:
    cur.execute("DELETE FROM fleet.retention_holds WHERE table_name = %s AND day = %s", (table, day))
