"""`dagster dev` for the tests: a temporary DAGSTER_HOME holding a copy of the repository's
dagster.yaml, fresh databases on the test cluster, a free port, its own process session
(killed as a whole at the end: the webserver, daemon and code server are separate processes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents_pipeline.core import settings
from agents_pipeline.core.localdb import free_port
from agents_pipeline.platform.instance_env import DAGSTER_URL, dagster_env

LOCATION = "agents_pipeline"
_WORKSPACE = f"""load_from:
  - python_module:
      module_name: agents_pipeline_tests.ui.ui_location
      location_name: {LOCATION}
"""
_LOCATION_STATUS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@dataclass
class DagsterDev:
    url: str
    env: dict[str, str]
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_loaded(dev: DagsterDev, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{dev.log_tail()}")
        try:
            entries = dev.graphql(_LOCATION_STATUS, timeout=5)["data"]["workspaceOrError"]["locationEntries"]
            entry = next(e for e in entries if e["name"] == LOCATION)
            kind = (entry["locationOrLoadError"] or {}).get("__typename")
            if entry["loadStatus"] == "LOADED" and kind == "RepositoryLocation":
                return
            if kind == "PythonError":
                pytest.fail(f"code location failed to load: {entry['locationOrLoadError']['message']}")
            last = entry["loadStatus"]
        except (OSError, KeyError, StopIteration, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(1)
    pytest.fail(f"dagster dev not ready after {timeout:.0f} s ({last}):\n{dev.log_tail()}")


@contextmanager
def running_dagster_dev(app_url: str, dagster_url: str, home: Path, timeout: float = 150) -> Iterator[DagsterDev]:
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    (home / "workspace.yaml").write_text(_WORKSPACE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        mp.setenv(DAGSTER_URL, dagster_url)
        env = {**os.environ, **dagster_env(app_url)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.PROJECT_DIR), env.get("PYTHONPATH")]))
    env.pop("AGENTS_PIPELINE_AGENT_TOKEN", None)
    # The only folder sqlite_migration_job may read legacy files from (test_browser puts its file there).
    env["AGENTS_PIPELINE_IMPORT_DIR"] = str(home / "import")
    (home / "import").mkdir(exist_ok=True)
    port = free_port()
    log = home / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(home / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(port)],
            env=env, cwd=settings.PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    dev = DagsterDev(f"http://127.0.0.1:{port}", env, home, log)
    try:
        _wait_loaded(dev, proc, timeout)
        yield dev
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the whole session, SIGKILL to whatever is left after ``grace_s``.

    Everything it holds is temporary, so a short grace is enough: the daemon otherwise takes
    20 s winding down its threads. The leader is reaped first, since an unreaped leader is a
    zombie that keeps the group "alive"."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
