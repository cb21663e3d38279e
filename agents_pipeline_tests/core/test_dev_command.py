"""`agents-pipeline dev` (what `make run` ends in) serves the UI and the agent API and stops both
cleanly on Ctrl-C;
`agents-pipeline db env` prints what a Dagster command run by hand needs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core import settings
from agents_pipeline.core.localdb import free_port
from agents_pipeline.core.settings import PROJECT_DIR
from agents_pipeline.platform.instance_env import DAGSTER_URL


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dev_serves_ui_and_stops_on_sigint_even_when_started_with_ampersand(db_env: str, tmp_path: Path) -> None:
    """Regression: started with `&` from a script, SIGINT is ignored and used to be inherited by
    `dagster dev`, which then never stopped."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    port, api_port = free_port(), free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGENTS_PIPELINE_UI_PORT": str(port),
           "AGENTS_PIPELINE_API_PORT": str(api_port)}
    exe = Path(sys.executable).with_name("agents-pipeline")
    # `sh -c '... & wait'` reproduces a script starting it in the background (SIGINT ignored).
    shell = subprocess.Popen(["sh", "-c", f"'{exe}' dev & wait"], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).status
            except OSError:
                time.sleep(1)
        assert status == 200, "dagster dev did not serve the UI within 90 s"
        health = urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=5)
        assert health.status == 200, "the agent API is not served beside the UI"
        dev = subprocess.run(["pgrep", "-f", f"{exe} dev"], capture_output=True, text=True).stdout.split()
        assert dev, "agents-pipeline dev process not found"
        os.kill(int(dev[0]), signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and shell.poll() is None:
            time.sleep(0.5)
        assert shell.poll() is not None, "agents-pipeline dev did not exit after SIGINT"
        leftovers = subprocess.run(["pgrep", "-f", "--", f"-p {port}"], capture_output=True, text=True).stdout.split()
        assert leftovers == []
        api_left = subprocess.run(["pgrep", "-f", "--", f"--port {api_port}"], capture_output=True, text=True).stdout
        assert api_left.split() == [], "the agent API outlived Ctrl-C"
    finally:
        if _alive(shell.pid):
            os.killpg(shell.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-f", "--", f"-p {port}"], check=False)
        subprocess.run(["pkill", "-KILL", "-f", "--", f"--port {api_port}"], check=False)


def test_dev_without_a_database_says_what_to_do_before_starting_dagster(tmp_path: Path, monkeypatch, capsys) -> None:
    """No variable and the project's PostgreSQL not running: one line, and `dagster dev` never
    starts (it used to start on a URL from the cluster's state file and fail in every service)."""
    monkeypatch.delenv(settings.DATABASE_URL, raising=False)
    monkeypatch.setenv(settings.HOME, str(tmp_path / "no-cluster"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("dagster dev was started"))
    assert main(["dev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`make run`" in err and settings.DATABASE_URL in err


def test_db_env_prints_the_url_and_dagster_home_then_the_deploy_variables(db_env: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv(DAGSTER_URL, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["db", "env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    comment = lines.index("# deploy/dagster.yaml reads Dagster's database from:")
    assert [line.split("=", 1)[0] for line in lines[:comment]] == [
        f"export {settings.DATABASE_URL}", "export DAGSTER_HOME"]
    assert f"export DAGSTER_HOME={PROJECT_DIR}" in lines
    assert "export AGENTS_PIPELINE_DAGSTER_PG_DB=dagster" in lines[comment:]
