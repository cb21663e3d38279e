"""The alert webhook the soak points AGENTS_PIPELINE_ALERT_WEBHOOK_URL at: every notification
is timestamped on arrival, so alert latency is measured through the real channel, end to end.

The standard library's ThreadingHTTPServer is enough for a receiver on loopback that takes a
few requests a minute; a Starlette app would need its own event-loop thread for the same.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsed": body[:200].decode("utf-8", "replace")}
                with outer.lock:
                    outer.received.append((time.time(), payload))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notices(self) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return list(self.received)
