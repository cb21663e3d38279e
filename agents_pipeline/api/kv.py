"""``/v1/agents/<name>/kv?key=<key>``: the versioned key-value store, the version as the ETag.

``GET`` answers the value with ``ETag: "<version>"`` (304 to a matching If-None-Match). ``PUT``
stores the body (any JSON but null) as the value: with ``If-Match: "<version>"`` it is a
compare-and-set, answered 412 with the current version (and its ETag) when another write came
first; with ``If-None-Match: *`` the key must not exist yet; with neither it is a plain set, as
SharedState.set is, so no 428: an unconditional write is a legitimate call, not a forgotten
header. ``Idempotency-Key: <uuid>`` makes a retried PUT answer its first result instead of
writing twice (fleet.kv_set's write id). The key is a query parameter, not a path segment: keys
and agent names both may hold "/", so a path could not tell where one ends; the server's access
log shows query strings as ``?***``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import responses
from agents_pipeline.api.calls import RemoteAgent, idempotency_key
from agents_pipeline.core import validation
from agents_pipeline.core.errors import NotFoundError, ValidationError

_ETAG = re.compile(r'\s*(?:W/)?"([0-9]{1,18})"\s*')


def etag(version: int) -> str:
    return f'"{version}"'


def _key(request: Request) -> str:
    return validation.name(request.query_params.get("key"), "key")


def _version(header: str) -> int:
    match = _ETAG.fullmatch(header)
    if match is None:
        raise ValidationError('If-Match must be one version as an ETag, e.g. If-Match: "3"')
    return int(match.group(1))


def get_value(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    key = _key(request)
    kv = agent.get(key)
    if kv is None:
        raise NotFoundError(f"key {key!r} not found")
    tag = etag(kv.version)
    if request.headers.get("if-none-match", "").strip() == tag:
        return Response(status_code=304, headers={"ETag": tag})
    return responses.json_answer({"key": kv.key, "value": kv.value, "version": kv.version,
                                  "updated_by": kv.updated_by, "updated_at": kv.updated_at}, headers={"ETag": tag})


def put_value(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    key = _key(request)
    if doc is None:
        raise ValidationError("body must be the JSON value to store (null cannot be stored)")
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_match is not None and if_none_match is not None:
        raise ValidationError("send If-Match or If-None-Match, not both")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise ValidationError("a PUT takes If-None-Match: * only (the key must not exist yet)")
    expected = _version(if_match) if if_match is not None else 0 if if_none_match is not None else None
    version = agent.set(key, doc, expected_version=expected, write_id=idempotency_key(request))
    return responses.json_answer({"key": key, "version": version}, headers={"ETag": etag(version)})
