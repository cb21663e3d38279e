"""Incremental pull of LangSmith runs into fleet.llm_runs.

Per project, a sync reads the window ``[high_water - lookback, now)`` in slices of at most
``slice_length``. Each slice is one transaction: the rows of every page are upserted as they
stream in (memory stays at one page), and the cursor moves to the slice's end in the same
transaction, so it never claims a time that was not fully read; any failure rolls the slice
back and leaves the cursor where it was. Runs still pending from before the window are then
re-read by id until they finish (or grow too old to wait for).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from langsmith import utils as ls_utils

from agents_pipeline.console import Progress
from agents_pipeline.defs.alerts.store import open_alert, resolve_alert
from agents_pipeline.defs.langsmith import store
from agents_pipeline.defs.langsmith.client import LangSmithSyncError, Redactor, describe_error
from agents_pipeline.defs.langsmith.settings import PAGE_SIZE, SyncSettings
from agents_pipeline.defs.langsmith.source import Project, RunSource, normalize_run

log = logging.getLogger(__name__)

_TRACE_AGENTS_MAX = 50_000  # roots remembered per sync for their children's attribution


@dataclass
class ProjectResult:
    project: str
    ok: bool = False
    error: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    high_water: datetime | None = None
    runs_fetched: int = 0
    inserted: int = 0
    updated: int = 0
    pages: int = 0
    slices: int = 0
    pending_refetched: int = 0
    pending_changed: int = 0
    stale_pending: int = 0
    missing: bool = False  # LangSmith has no such project (yet): nothing to read, not an error
    seconds: float = 0.0

    @property
    def unchanged(self) -> int:
        return self.runs_fetched - self.inserted - self.updated


@dataclass
class _Attribution:
    """Agent of each run: its own claim, else its trace root's, else the project's mapping."""

    project_agent: str | None
    roots: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        agent = row["agent_name"]
        if agent and row["parent_run_id"] is None:
            self.roots[row["run_id"]] = agent
            if len(self.roots) > _TRACE_AGENTS_MAX:
                self.roots.popitem(last=False)
        elif agent is None and row["trace_id"]:
            row["agent_name"] = self.roots.get(row["trace_id"])
        row["project_agent"] = self.project_agent
        return row


def _slices(start: datetime, end: datetime, length: timedelta) -> list[tuple[datetime, datetime]]:
    out, s = [], start
    while s < end:
        e = min(s + length, end)
        out.append((s, e))
        s = e
    return out


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _apply(conn: sa.Connection, runs: Iterable[Any], project: str, attribution: _Attribution,
           result: ProjectResult, progress: Progress | None = None) -> None:
    page: list[dict[str, Any]] = []
    for run in runs:
        page.append(attribution.apply(normalize_run(run, project)))
        if len(page) >= PAGE_SIZE:
            _flush(conn, page, result, progress)
            page = []
    _flush(conn, page, result, progress)


def _flush(conn: sa.Connection, page: list[dict[str, Any]], result: ProjectResult,
           progress: Progress | None = None) -> None:
    if not page:
        return
    inserted, updated = store.upsert_page(conn, page)
    if progress is not None:
        progress.update(len(page))
    result.runs_fetched += len(page)
    result.inserted += inserted
    result.updated += updated
    result.pages += 1


def sync_project(engine: sa.Engine, source: RunSource, project_name: str, settings: SyncSettings, *,
                 redact: Redactor, now: datetime | None = None, window: tuple[datetime, datetime] | None = None,
                 alerts: bool = True, progress: Progress | None = None) -> ProjectResult:
    """Pulls one project. ``window`` given: a backfill of that range, the cursor is left alone.
    ``progress`` counts the runs read, its note the slices done and the time left."""
    began = time.monotonic()
    now = now or datetime.now(UTC)
    result = ProjectResult(project=project_name)
    attribution = _Attribution(settings.project_agents.get(project_name))
    step = f"LangSmith sync of project {project_name!r}"
    try:
        try:
            project = source.resolve(project_name)
        except ls_utils.LangSmithNotFoundError:
            log.warning("%s: LangSmith has no project of that name (yet); nothing to read", step)
            result.ok, result.missing = True, True
            result.seconds = round(time.monotonic() - began, 3)
            return result
        if window is None:
            with engine.begin() as conn:
                store.lock_project(conn, project_name)
                cursor = store.read_cursor(conn, project_name)
            start = cursor.high_water - settings.lookback if cursor.high_water else now - settings.initial_window
            end = max(now, start)
        else:
            start, end = window
        result.window_start, result.window_end = start, end
        slices = _slices(start, end, settings.slice_length)
        if progress is not None:
            progress.stage(project_name)
        for i, (s, e) in enumerate(slices):
            if progress is not None:
                progress.note(_slice_note(i, len(slices), time.monotonic() - began))
            with engine.begin() as conn:
                store.lock_project(conn, project_name)
                _apply(conn, source.fetch(project, s, e), project_name, attribution, result, progress)
                if window is None:
                    store.write_cursor(conn, store.Cursor(project_name, e, project.project_id),
                                       runs_written=result.inserted + result.updated)
                    result.high_water = e
            result.slices += 1
        if window is None:
            _refetch_pending(engine, source, project, start, now, settings, attribution, result)
        result.ok = True
    except LangSmithSyncError as exc:
        result.error = redact(exc)
    except sa.exc.SQLAlchemyError as exc:
        result.error = redact(f"{step}: database error: {_db_message(exc)}")
    except Exception as exc:  # the client raises many types; each becomes one safe line
        result.error = str(describe_error(exc, redact, step))
    result.seconds = round(time.monotonic() - began, 3)
    if result.ok:
        log.info("%s: %d runs read (%d new, %d updated, %d unchanged) in %d pages, %.1fs",
                 step, result.runs_fetched, result.inserted, result.updated, result.unchanged,
                 result.pages, result.seconds)
    else:
        log.error("%s failed: %s", step, result.error)
    if alerts:
        _record_alert(engine, result)
    return result


def _slice_note(done: int, total: int, elapsed_s: float) -> str:
    """``slice 3/24, ETA 0:01:10``: LangSmith gives no run count up front, so the time left comes
    from the share of the window read so far."""
    note = f"slice {done + 1}/{total}"
    if done:
        note += f", ETA {timedelta(seconds=round(elapsed_s / done * (total - done)))}"
    return note


def _refetch_pending(engine: sa.Engine, source: RunSource, project: Project, window_start: datetime,
                     now: datetime, settings: SyncSettings, attribution: _Attribution,
                     result: ProjectResult) -> None:
    """Re-reads, by id, runs stored as pending that started before the window, in one transaction."""
    oldest = now - settings.pending_max_age
    with engine.begin() as conn:
        store.lock_project(conn, project.name)
        pending = store.pending_runs(conn, project.name, window_start, oldest, limit=20 * PAGE_SIZE)
        before = result.updated
        for i in range(0, len(pending), PAGE_SIZE):
            chunk = pending[i:i + PAGE_SIZE]
            since = min(st for _, st in chunk)
            _apply(conn, source.fetch_by_ids(project, [rid for rid, _ in chunk], since),
                   project.name, attribution, result)
        result.pending_refetched = len(pending)
        result.pending_changed = result.updated - before
        result.stale_pending = store.count_stale_pending(conn, project.name, oldest)


def _record_alert(engine: sa.Engine, result: ProjectResult) -> None:
    key = f"langsmith_sync_failed:{result.project}"
    try:
        with engine.begin() as conn:
            if result.ok:
                resolve_alert(conn, key=key, message="LangSmith sync succeeded again")
            else:
                open_alert(conn, key=key, kind="sync_failed", severity="warning",
                           subject=f"LangSmith sync failing for project {result.project}",
                           message=result.error, details={"project": result.project})
    except sa.exc.SQLAlchemyError as exc:  # the sync's own outcome matters more than its alert
        log.warning("could not record the LangSmith sync alert: %s", _db_message(exc))


def sync_all(engine: sa.Engine, source_factory: Callable[[], RunSource], settings: SyncSettings, *,
             redact: Redactor, now: datetime | None = None,
             window: tuple[datetime, datetime] | None = None,
             progress: Progress | None = None) -> list[ProjectResult]:
    """Every configured project in turn; one failing project does not stop the others."""
    source = source_factory()
    return [sync_project(engine, source, p, settings, redact=redact, now=now, window=window,
                         alerts=window is None, progress=progress)
            for p in settings.projects]
