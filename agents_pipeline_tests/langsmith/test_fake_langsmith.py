"""The local LangSmith refuses request shapes the pinned client does not send, so the tests above
cannot pass against requests hosted LangSmith would reject."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def _call(fake, method: str, path: str, body: bytes | None = None, *, key: str | None = None,
          content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(fake.url + path, data=body, method=method, headers={
        "x-api-key": key if key is not None else fake.api_key, "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(("body", "reason"), [
    ({"limit": 500}, "limit must be between 1 and 100"),
    ({"page_size": 100}, "unsupported query fields ['page_size']"),
    ({"filter": 'gt(latency, 5)'}, "unsupported filter"),
    ({"select": ["id", "no_such_field"]}, "select must be a list of known fields"),
    ({"cursor": "%%%"}, "malformed cursor"),
])
def test_query_shapes_the_client_does_not_send_get_400(fake, body, reason):
    pid = fake.add_project("p")
    status, answer = _call(fake, "POST", "/runs/query", json.dumps({"session": [pid], "select": ["id"], **body}).encode())
    assert status == 400 and reason in answer["detail"]


def test_ingest_and_auth_shapes(fake):
    assert _call(fake, "GET", "/info", key="wrong")[0] == 401
    assert _call(fake, "POST", "/runs/batch", json.dumps({"post": [], "upsert": []}).encode())[0] == 400
    status, answer = _call(fake, "POST", "/runs/multipart", b"--b\r\nContent-Disposition: form-data; name=\"feedback.x\""
                           b"\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n",
                           content_type="multipart/form-data; boundary=b")
    assert status == 400 and "unsupported multipart part 'feedback.x'" in answer["detail"]
    assert _call(fake, "POST", "/runs", json.dumps({"id": "x", "name": "n"}).encode())[0] == 400
    assert _call(fake, "POST", "/api/v2/runs/query", b"{}")[0] == 404
