"""``GET /v1/status``, ``GET /v1/alerts`` and ``GET /metrics``: the operator's reads, behind an
operator API key (``Authorization: Bearer apk_...``, as Prometheus scrapes with a bearer token).

The API's login holds no table privilege; these routes present the key's SHA-256 to
fleet.api_status and fleet.api_alerts (sql/0018), SECURITY DEFINER functions that answer only to
a live key and only read. A wrong, revoked or missing key gets one 401 whatever the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import config, metrics, responses
from agents_pipeline.api.backend import Backend
from agents_pipeline.api.batches import bearer_proof
from agents_pipeline.console import ago
from agents_pipeline.core.errors import AuthError, DatabaseUnavailableError, ValidationError

STATUS_SQL = "SELECT fleet.api_status(%s)"
ALERTS_SQL = "SELECT fleet.api_alerts(%s, %s, %s)"


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _read(backend: Backend, proof: bytes, *, status: bool, alerts: tuple[bool, int] | None) -> dict[str, Any]:
    backend.ensure_verified()

    def work(cur) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if status:
            cur.execute(STATUS_SQL, (proof,))
            out["status"] = cur.fetchone()[0]
        if alerts is not None:
            cur.execute(ALERTS_SQL, (proof, *alerts))
            out["alerts"] = cur.fetchone()[0]
        return out

    return backend.calls.transaction(work)


async def _answer(request: Request, render, *, status: bool, alerts: tuple[bool, int] | None) -> Response:
    proof = bearer_proof(request)
    if proof is None:
        return responses.unauthorized(responses.OPERATOR_UNAUTHORIZED)
    backend: Backend = request.app.state.backend
    try:
        found = await run_in_threadpool(_read, backend, proof, status=status, alerts=alerts)
    except AuthError:
        return responses.unauthorized(responses.OPERATOR_UNAUTHORIZED)
    except ValidationError as exc:
        return responses.refused(400, str(exc), json=True)
    except DatabaseUnavailableError:
        return responses.unavailable(json=True, retry_after_s=config.RETRY_AFTER_UNAVAILABLE_S)
    return render(found)


async def get_status(request: Request) -> Response:
    """What `agents-pipeline status --json` shows, with seconds since each agent's heartbeat."""
    def render(found: dict[str, Any]) -> Response:
        doc = found["status"]
        now = datetime.now(UTC)
        for agent in doc["agents"]:
            agent["last_heartbeat"] = ago(_time(agent["last_seen"]), now)
            agent["since"] = ago(_time(agent["status_since"]), now)
        return responses.json_answer(doc)

    return await _answer(request, render, status=True, alerts=None)


async def get_alerts(request: Request) -> Response:
    """`agents-pipeline alerts --json`: ``?open=true`` for open alerts only, ``?limit=`` 1-1000 (100)."""
    open_raw = request.query_params.get("open", "false").lower()
    limit_raw = request.query_params.get("limit", "100")
    if open_raw not in ("true", "false", "1", "0") or not limit_raw.isdigit():
        return responses.refused(400, "open must be true or false and limit a whole number", json=True)

    def render(found: dict[str, Any]) -> Response:
        return responses.json_answer({"alerts": found["alerts"], "generated_at": datetime.now(UTC)})

    return await _answer(request, render, status=False, alerts=(open_raw in ("true", "1"), int(limit_raw)))


async def get_metrics(request: Request) -> Response:
    """The Prometheus text format (api/metrics.py): the fleet's series and this process's counters."""
    def render(found: dict[str, Any]) -> Response:
        return Response(metrics.exposition(found["status"]["agents"], found["alerts"]),
                        media_type=metrics.CONTENT_TYPE)

    return await _answer(request, render, status=True, alerts=(True, 1000))
