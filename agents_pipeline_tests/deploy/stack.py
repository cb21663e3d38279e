"""Production's processes, started one by one as docs/DEPLOY.md says: the code server
(`dagster api grpc`), `dagster-daemon run` and `dagster-webserver`, both with the unmodified
deploy/workspace.yaml, every one of them reading a copy of deploy/dagster.yaml from DAGSTER_HOME
and its connections from the environment variables the guide names.

Each process runs in a session of its own, so the test can kill exactly one of them (`kill -9`
of its process id) and, at the end, each process group it started: the code server's group
holds the run workers it spawned.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agents_pipeline.core import settings
from agents_pipeline.core.localdb import free_port
from agents_pipeline.platform.instance_env import DAGSTER_URL, dagster_storage_env
from agents_pipeline_tests.deploy.location import TEST_DIR

DEPLOY = settings.PROJECT_DIR / "deploy"
WORKSPACE = DEPLOY / "workspace.yaml"
LOCATION = "agents_pipeline"
MODULE = "agents_pipeline_tests.deploy.location"
BIN = Path(sys.executable).parent

_LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def deploy_env(home: Path, app_url: str, dagster_url: str, work: Path) -> dict[str, str]:
    """The environment docs/DEPLOY.md names, for every process of the deployment."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AGENTS_PIPELINE_", "DAGSTER_", "PG"))}
    env.update({
        "DAGSTER_HOME": str(home),
        settings.DATABASE_URL: app_url,
        "AGENTS_PIPELINE_CODE_SERVER_HOST": "127.0.0.1",
        "AGENTS_PIPELINE_CODE_SERVER_PORT": str(free_port()),
        "AGENTS_PIPELINE_UI_URL": f"http://127.0.0.1:{free_port()}",
        # The test location's module lives in the clone, beside the installed product.
        "PYTHONPATH": str(settings.PROJECT_DIR),
        TEST_DIR: str(work),
    })
    saved = os.environ.get(DAGSTER_URL)
    os.environ[DAGSTER_URL] = dagster_url
    try:
        env.update(dagster_storage_env(app_url))
    finally:
        if saved is None:
            del os.environ[DAGSTER_URL]
        else:
            os.environ[DAGSTER_URL] = saved
    return env


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    groups: list[int] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)

    @property
    def ui_url(self) -> str:
        return self.env["AGENTS_PIPELINE_UI_URL"]

    @property
    def code_port(self) -> str:
        return self.env["AGENTS_PIPELINE_CODE_SERVER_PORT"]

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process holds it
        proc = subprocess.Popen(args, env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.processes[name] = proc
        self.killed.discard(name)
        self.groups.append(proc.pid)
        return proc

    def start_code_server(self) -> subprocess.Popen:
        return self.start("code-server", [str(BIN / "dagster"), "api", "grpc", "-m", MODULE,
                                          "--location-name", LOCATION, "-h", "127.0.0.1", "-p", self.code_port])

    def start_daemon(self) -> subprocess.Popen:
        return self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)])

    def start_webserver(self) -> subprocess.Popen:
        port = self.ui_url.rsplit(":", 1)[1]
        return self.start("webserver", [str(BIN / "dagster-webserver"), "-w", str(WORKSPACE),
                                        "-h", "127.0.0.1", "-p", port])

    def kill(self, name: str) -> None:
        """`kill -9` of one process (not its group: the code server's run workers live on)."""
        proc = self.processes[name]
        self.killed.add(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def exited(self) -> list[str]:
        """Processes that ended without the test killing them."""
        return [f"{name} (exit {proc.returncode})" for name, proc in self.processes.items()
                if name not in self.killed and proc.poll() is not None]

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def logs_tail(self) -> str:
        return "\n".join(self.log_tail(name) for name in self.processes)

    # Health checks: the commands docs/DEPLOY.md gives an operator, and what they call, polled
    # in this process (each command is a Python start, seconds of CPU on a busy machine).

    def start_health_commands(self) -> dict[str, subprocess.Popen]:
        """`dagster api grpc-health-check` and `dagster-daemon liveness-check`, started side by side
        (collect them with ``finish``)."""
        commands = {
            "code server": [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", self.code_port],
            "daemon": [str(BIN / "dagster-daemon"), "liveness-check"],
        }
        return {name: subprocess.Popen(args, env=self.env, cwd=self.home, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True) for name, args in commands.items()}

    def code_server_serving(self) -> bool:
        """What `dagster api grpc-health-check` asks: the gRPC health service says SERVING."""
        from dagster._grpc.client import DagsterGrpcClient

        try:   # the port first: the client prints every refused connection
            socket.create_connection(("127.0.0.1", int(self.code_port)), timeout=2).close()
        except OSError:
            return False
        try:
            return DagsterGrpcClient(port=int(self.code_port), host="127.0.0.1").health_check_query() == "SERVING"
        except Exception:
            return False

    @staticmethod
    def daemon_live(instance) -> bool:
        """What `dagster-daemon liveness-check` asks: every daemon's heartbeat is recent."""
        from dagster._daemon.controller import all_daemons_live

        return all_daemons_live(instance, heartbeat_tolerance_seconds=300)

    def location_loaded(self) -> bool:
        """The webserver answers /server_info and sees the code location loaded."""
        try:
            with urllib.request.urlopen(f"{self.ui_url}/server_info", timeout=5) as resp:
                if resp.status != 200:
                    return False
            body = json.dumps({"query": _LOCATION_STATUS}).encode()
            req = urllib.request.Request(f"{self.ui_url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                entries = json.loads(resp.read())["data"]["workspaceOrError"]["locationEntries"]
        except (OSError, KeyError, TypeError, ValueError):
            return False
        return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED"
                   and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation" for e in entries)


def finish(running: dict[str, subprocess.Popen], timeout: float = 150) -> dict[str, subprocess.CompletedProcess]:
    done = {}
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=timeout)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out)
    return done


def wait_for(what: str, check, timeout: float, stack: Stack | None = None, poll: float = 0.5) -> float:
    """Polls ``check`` until true; returns the seconds it took (fails with the logs' tails)."""
    started = time.monotonic()
    while not check():
        if stack is not None and stack.exited():
            raise AssertionError(f"{what}: {', '.join(stack.exited())} ended\n" + stack.logs_tail())
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n" + (stack.logs_tail() if stack else ""))
        time.sleep(poll)
    return time.monotonic() - started


def make_home(root: Path) -> Path:
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home
