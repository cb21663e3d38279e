"""GET /openapi.json describes every route the app serves, with its methods, over real HTTP."""

from __future__ import annotations

import json
import re

from agents_pipeline.api.app import routes


def test_every_route_and_method_is_in_the_openapi_document(api_server) -> None:
    status, head, body = api_server.request("GET", "/openapi.json")
    doc = json.loads(body)
    assert status == 200 and head["content-type"] == "application/json" and doc["openapi"].startswith("3.")
    served = set()
    for route in routes():
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)     # Starlette's {name:path} is OpenAPI's {name}
        for method in route.methods - {"HEAD"}:
            served.add((path, method.lower()))
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served - described == set(), "routes missing from /openapi.json"
    assert described - served == set(), "operations in /openapi.json that no route serves"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["responses"], (path, method)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (path, method)
