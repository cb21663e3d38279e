"""Where runs come from: one small interface, one implementation on the pinned client.

``RunSource`` is everything the sync needs from LangSmith: resolve a project, stream the runs
that started in ``[start, end)``, and re-read some runs by id. The sync never sees the HTTP
API, so replacing the deprecated query is a change to this file only.

Today: ``Client.list_runs`` (langsmith 0.15.1), which sends, per page,
``POST {endpoint}/runs/query`` with ``{"session": [project_id], "start_time": ..., "filter":
'lt(start_time, "...")', "order": "asc", "select": [...]}`` plus ``"cursor"`` from the previous
page's ``cursors.next``; the server chooses the page size (100 on hosted LangSmith, also its
maximum). We do not pass ``limit``: in ``list_runs`` it caps the whole iteration, not a page.
Project names are resolved once with ``read_project`` (``GET /sessions?name=...&limit=1``).

Moving to the v2 query (``list_runs`` is deprecated and due for removal after 2027-01-31):
write ``QueryV2Source`` with the same three methods over ``client.runs.query_v2(...)``
(``POST /api/v2/runs/query``; on 0.15.1 ``Client.runs`` is the async resource, so drive it with
``asyncio.run`` or use ``langsmith.AsyncClient``), and pass it where ``ListRunsSource`` is built
in ``resources.py``. Two defaults of v2 must be overridden or data silently goes missing:
``min_start_time`` defaults to one day ago (always pass ``min_start_time=start`` and
``max_start_time=end``), and ``selects`` defaults to the id alone (pass ``V2_SELECTS`` below).
Also: ``page_size=100``; ``project_ids=[...]``; ``ids=[...]`` for ``fetch_by_ids``; the page
cursor is ``next_cursor``; v2 returns ``project_id`` (our ``session_id``), ``parent_run_ids``
(take the last as ``parent_run_id``) and upper-case ``run_type``/``status`` (lower them);
``include_subtree_usage=True`` gives roots their subtree totals as v1 does. ``normalize_run``
then works unchanged on ``langsmith._internal._v2_migration_utils._v2_run_to_schema(run)``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from langsmith import Client
from langsmith import schemas as ls_schemas

from agents_pipeline.defs.langsmith.settings import AGENT_METADATA_KEYS, AGENT_TAG_PREFIX, PAGE_SIZE

# The fields the sync stores; inputs and outputs are left in LangSmith (size, privacy).
V1_SELECT = (
    "id", "trace_id", "parent_run_id", "name", "run_type", "status", "start_time", "end_time",
    "error", "tags", "extra", "prompt_tokens", "completion_tokens", "total_tokens", "prompt_cost",
    "completion_cost", "total_cost", "first_token_time", "session_id", "dotted_order",
)
V2_SELECTS = (
    "ID", "TRACE_ID", "PARENT_RUN_IDS", "NAME", "RUN_TYPE", "STATUS", "START_TIME", "END_TIME",
    "ERROR", "TAGS", "EXTRA", "PROMPT_TOKENS", "COMPLETION_TOKENS", "TOTAL_TOKENS", "PROMPT_COST",
    "COMPLETION_COST", "TOTAL_COST", "FIRST_TOKEN_TIME", "PROJECT_ID", "DOTTED_ORDER",
)
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class Project:
    name: str
    project_id: str


class RunSource(Protocol):
    """The LangSmith reads the sync depends on (see the module docstring for v1 and v2)."""

    def resolve(self, project: str) -> Project:
        """The project's id; raises if LangSmith does not know the name."""
        ...

    def fetch(self, project: Project, start: datetime, end: datetime) -> Iterator[ls_schemas.Run]:
        """Streams every run of ``project`` with ``start <= start_time < end``, oldest first."""
        ...

    def fetch_by_ids(self, project: Project, run_ids: list[str], since: datetime) -> Iterator[ls_schemas.Run]:
        """Streams the named runs (at most one page of ids per call) that started at or after ``since``."""
        ...


class ListRunsSource:
    """``RunSource`` over ``Client.list_runs`` (v1 ``POST /runs/query``)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def resolve(self, project: str) -> Project:
        found = self.client.read_project(project_name=project)
        return Project(name=project, project_id=str(found.id))

    def fetch(self, project: Project, start: datetime, end: datetime) -> Iterator[ls_schemas.Run]:
        return self._list(project_id=project.project_id, start_time=_utc(start),
                          filter=f'lt(start_time, "{_utc(end).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}")', order="asc")

    def fetch_by_ids(self, project: Project, run_ids: list[str], since: datetime) -> Iterator[ls_schemas.Run]:
        if len(run_ids) > PAGE_SIZE:
            raise ValueError(f"fetch_by_ids takes at most {PAGE_SIZE} ids per call, got {len(run_ids)}")
        return self._list(project_id=project.project_id, run_ids=run_ids, start_time=_utc(since))

    def _list(self, **kwargs: Any) -> Iterator[ls_schemas.Run]:
        with warnings.catch_warnings():
            # Deprecated (see the module docstring); warned once per call, every 15 minutes.
            warnings.filterwarnings("ignore", message=r"list_runs\(\) is deprecated")
            runs = self.client.list_runs(select=list(V1_SELECT), **kwargs)
        return iter(runs)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- from a LangSmith run to a row of fleet.llm_runs ---------------------------------------------

def explicit_agent(metadata: Mapping[str, Any], tags: Iterable[str] | None) -> str | None:
    """The agent a run names itself: a metadata key, else an ``agent:<name>`` tag."""
    for key in AGENT_METADATA_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    for tag in tags or ():
        if isinstance(tag, str) and tag.startswith(AGENT_TAG_PREFIX) and len(tag) > len(AGENT_TAG_PREFIX):
            return tag[len(AGENT_TAG_PREFIX):].strip()[:200] or None
    return None


def model_of(extra: Mapping[str, Any]) -> str | None:
    metadata = extra.get("metadata") or {}
    params = extra.get("invocation_params") or {}
    for value in (metadata.get("ls_model_name"), params.get("model"), params.get("model_name"),
                  metadata.get("model")):
        if isinstance(value, str) and value:
            return value[:200]
    return None


def _iso(value: datetime | None) -> str | None:
    return _utc(value).isoformat() if value is not None else None


def _num(value: Decimal | float | int | None) -> str | None:
    return None if value is None else str(value)


def normalize_run(run: ls_schemas.Run, project: str) -> dict[str, Any]:
    """The row the upsert takes (JSON-ready), with a hash of everything LangSmith said about it."""
    extra = run.extra if isinstance(run.extra, dict) else {}
    metadata = extra.get("metadata") if isinstance(extra.get("metadata"), dict) else {}
    kept_extra = {
        "metadata": metadata,
        "dotted_order": run.dotted_order or None,
        "session_id": str(run.session_id) if run.session_id else None,
        "prompt_cost": _num(run.prompt_cost),
        "completion_cost": _num(run.completion_cost),
        "first_token_time": _iso(run.first_token_time),
    }
    row = {
        "run_id": str(run.id),
        "trace_id": str(run.trace_id) if run.trace_id else None,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        "project": project,
        "name": (run.name or "")[:500],
        "run_type": run.run_type,
        "status": run.status,
        "start_time": _iso(run.start_time),
        "end_time": _iso(run.end_time),
        "model": model_of(extra),
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "total_tokens": run.total_tokens,
        "total_cost": _num(run.total_cost),
        "error": run.error[:MAX_ERROR_CHARS] if isinstance(run.error, str) else None,
        "tags": [t for t in (run.tags or []) if isinstance(t, str)],
        "extra": kept_extra,
    }
    row["content_hash"] = hashlib.md5(json.dumps(row, sort_keys=True, default=str).encode(), usedforsecurity=False).hexdigest()
    row["agent_name"] = explicit_agent(metadata, run.tags)
    return row


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True
