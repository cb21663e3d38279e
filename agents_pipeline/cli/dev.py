"""``agents-pipeline dev``: runs `dagster dev` and the agent API on the configured database
until Ctrl-C.

The database is AGENTS_PIPELINE_DATABASE_URL, else the project's PostgreSQL, which must be
running (`make run` starts it first); it is passed on to `dagster dev` so that every process
agrees on it and the resource refuses a different URL from run config. Dagster's storage (the
root dagster.yaml) derives its own database from it.

`dagster dev` is started in its own process session: started with ``&`` from a script it
ignores SIGINT, and killing only its leader would orphan the daemon, webserver and code
server. Ctrl-C or SIGTERM here is forwarded to the whole session, then escalated.

The agent API (`agents-pipeline api`, AGENTS_PIPELINE_API_HOST/PORT, default 127.0.0.1:3001) runs
beside it in a session of its own and is stopped the same way; it is not fatal if it cannot start
(the UI still serves, and its one line says why).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from agents_pipeline.cli.conventions import add_command

GRACE_S = 45.0  # how long Ctrl-C waits for `dagster dev` to stop its services by itself


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``dev`` (a server: it runs until Ctrl-C, so it has no --json)."""
    dev = add_command(subparsers, "dev", "start `dagster dev` and the agent API on the configured database "
                      "(what make run does)", ["agents-pipeline dev",
                                               "AGENTS_PIPELINE_UI_PORT=3300 agents-pipeline dev"])
    dev.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agents_pipeline.core import settings  # not at import: the parser of every command loads this module
    from agents_pipeline.platform.instance_env import app_database_url, dagster_env

    env = {**os.environ, **dagster_env(app_database_url())}
    host = os.environ.get("AGENTS_PIPELINE_UI_HOST", "127.0.0.1")
    port = os.environ.get("AGENTS_PIPELINE_UI_PORT", "3000")
    api_host = os.environ.get("AGENTS_PIPELINE_API_HOST", "127.0.0.1")
    api_port = os.environ.get("AGENTS_PIPELINE_API_PORT", "3001")
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(settings.PROJECT_DIR / "workspace.yaml"),
           "-h", host, "-p", port]
    api_cmd = [sys.executable, "-m", "agents_pipeline.cli.main", "api", "--host", api_host, "--port", api_port]
    children: list[subprocess.Popen] = []
    stop_requested: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        stop_requested.append(time.monotonic())
        for child in children:
            try:
                os.killpg(child.pid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
            except ProcessLookupError:
                pass

    # Handlers go in before the child starts: a handler (unlike SIG_IGN, which a shell's `&`
    # sets) is reset to the default on exec, so `dagster dev` can always be interrupted.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    proc = subprocess.Popen(cmd, env=env, cwd=settings.PROJECT_DIR, start_new_session=True)
    children.append(proc)
    api = subprocess.Popen(api_cmd, env=env, cwd=settings.PROJECT_DIR, start_new_session=True)
    children.append(api)
    print(f"Dagster UI on http://{host}:{port}, agent API on http://{api_host}:{api_port} (Ctrl-C stops both)",
          flush=True)
    # `dagster dev` waits up to a minute for each of its services; on a loaded machine a service
    # can hang past that, so after GRACE_S the rest of the session is stopped by force.
    while True:
        try:
            code = proc.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            if stop_requested and time.monotonic() - stop_requested[0] > GRACE_S:
                try:
                    stop_session(proc.pid)
                except ProcessLookupError:
                    pass
    try:
        stop_session(proc.pid)
    except ProcessLookupError:
        pass
    stop_child(api)
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM, 130) else code


def stop_session(pgid: int, timeout: float = 20.0) -> None:
    """SIGTERM to what is left of the session, SIGKILL after ``timeout``."""
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)


def stop_child(child: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to a child's session unless it has ended, SIGKILL after ``timeout``; reaped either
    way (a zombie would still answer stop_session's probe)."""
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
