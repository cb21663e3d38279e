"""The API server as the tests run it: `agents-pipeline api` in a process of its own, on a free
port, against a test database, its log (stdout and stderr) kept in a file the tests read back."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents_pipeline.core.localdb import free_port


@dataclass
class ApiServer:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: status, headers (lower-case names), body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def post_json(self, path: str, doc: Any, token: str | None) -> tuple[int, dict[str, str], Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        status, head, body = self.request("POST", path, json.dumps(doc).encode(), headers)
        return status, head, json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(api_db_url: str, log_path: Path, *, wait_s: float = 30, extra_env: dict[str, str] | None = None,
          args: tuple[str, ...] = ()) -> ApiServer:
    """Starts the server and waits until /healthz answers (or the process ends)."""
    port = free_port()
    env = {**os.environ, "AGENTS_PIPELINE_API_DATABASE_URL": api_db_url, **(extra_env or {})}
    log = log_path.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "agents_pipeline.cli.main", "api", "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = ApiServer(proc, port, log_path)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if server.request("GET", "/healthz", timeout=2)[0] == 200:
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"the API server did not serve within {wait_s} s:\n{server.log()}")
