"""`agents-pipeline dev` (what `make run` ends in) serves the UI and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agents_pipeline.core.localdb import free_port
from agents_pipeline.core.settings import PROJECT_DIR


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
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGENTS_PIPELINE_UI_PORT": str(port)}
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
        dev = subprocess.run(["pgrep", "-f", f"{exe} dev"], capture_output=True, text=True).stdout.split()
        assert dev, "agents-pipeline dev process not found"
        os.kill(int(dev[0]), signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and shell.poll() is None:
            time.sleep(0.5)
        assert shell.poll() is not None, "agents-pipeline dev did not exit after SIGINT"
        leftovers = subprocess.run(["pgrep", "-f", "--", f"-p {port}"], capture_output=True, text=True).stdout.split()
        assert leftovers == []
    finally:
        if _alive(shell.pid):
            os.killpg(shell.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-f", "--", f"-p {port}"], check=False)
