"""The agents-pipeline command line, run as a user would: a subprocess per command."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "agents_pipeline.cli.main"]


def run(args: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_register_heartbeat_status(db_env: str) -> None:
    out = run(["agents", "register", "demo", "--period", "10", "--grace", "5", "--json"]).stdout
    token = json.loads(out)["token"]
    assert token.startswith("apt_") and len(token) > 40
    run(["heartbeat", "demo", "--message", "first"])
    status = json.loads(run(["status", "--json"]).stdout)
    (agent,) = status["agents"]
    assert agent["name"] == "demo"
    assert agent["period_s"] == 10 and agent["grace_s"] == 5
    assert agent["heartbeat_count"] == 1 and agent["last_message"] == "first"
    assert agent["last_seen"] is not None
    assert "token" not in json.dumps(agent).replace("has_token", "")


def test_agent_token_from_environment_only(db_env: str) -> None:
    token = json.loads(run(["agents", "register", "a1", "--json"]).stdout)["token"]
    run(["agents", "register", "a2"])
    env = {**os.environ, "AGENTS_PIPELINE_AGENT_TOKEN": token}
    run(["heartbeat", "a1"], env=env)
    refused = run(["heartbeat", "a2"], env=env, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "agents-pipeline: token refused for agent 'a2'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["heartbeat", "ghost"], "agents-pipeline: unknown agent 'ghost'"),
        (["agents", "pause", "ghost"], "agents-pipeline: unknown agent 'ghost'"),
        (["agents", "register", "x", "--period", "0"], "agents-pipeline: period must be at least 1 s"),
    ],
)
def test_failures_are_one_line_on_stderr(db_env: str, args: list[str], message: str) -> None:
    proc = run(args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message)


def test_pause_resume(db_env: str) -> None:
    run(["agents", "register", "p"])
    run(["agents", "pause", "p"])
    assert json.loads(run(["agents", "list", "--json"]).stdout)[0]["paused"] is True
    run(["agents", "resume", "p"])
    assert json.loads(run(["agents", "list", "--json"]).stdout)[0]["paused"] is False


def test_heartbeat_path_imports_nothing_heavy(db_env: str) -> None:
    """Guards the agent side against importing Dagster, SQLAlchemy or pandas (seconds of start-up)."""
    run(["agents", "register", "light"])
    code = (
        "import sys\n"
        "from agents_pipeline.core import SharedState\n"
        "with SharedState() as s: s.heartbeat('light')\n"
        "from agents_pipeline.cli.main import main\n"
        "assert main(['heartbeat', 'light']) == 0\n"
        "heavy = sorted(m for m in ('dagster', 'sqlalchemy', 'pandas', 'pyarrow') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.serial
def test_shell_heartbeat_within_300_ms(db_env: str) -> None:
    run(["agents", "register", "fast"])
    exe = os.path.join(os.path.dirname(sys.executable), "agents-pipeline")
    walls = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([exe, "heartbeat", "fast"], check=True, capture_output=True, timeout=30)
        walls.append(time.perf_counter() - started)
    assert statistics.median(walls) < 0.300, walls
