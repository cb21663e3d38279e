"""docs/api.md's examples run as written against a server the test starts: the curl block under
bash, the standard-library Python agent under a bare ``python3 -I -S`` (no site packages, so it
cannot lean on this package), each checked against what the database then holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from agents_pipeline_tests.api.conftest import query

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def example(kind: str) -> str:
    """The fenced block after the ``<!-- example: KIND ... -->`` marker."""
    match = re.search(rf"<!-- example: {kind} .*?-->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"no {kind} example in {DOC}"
    return match.group(1)


def _env(api_server, reg) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "API": api_server.base, "AGENTS_PIPELINE_API_URL": api_server.base,
            "NAME": reg.name, "AGENT_NAME": reg.name, "AGENTS_PIPELINE_AGENT_TOKEN": reg.token}


def test_the_curl_example_runs(api_server, operator_db, new_agent) -> None:
    reg = new_agent("curl-doc")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", example("curl")], env=_env(api_server, reg),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'etag: "1"' in done.stdout.lower() and "location: /v1/agents/" in done.stdout.lower()
    assert query(operator_db, "SELECT value, version FROM fleet.kv_store WHERE key = %s",
                 (f"{reg.name}/last_batch",)) == [({"batch": 43}, 2)]
    assert query(operator_db, "SELECT heartbeat_count FROM fleet.agents WHERE name = %s", (reg.name,)) == [(1,)]
    assert query(operator_db, """SELECT count(*) FROM fleet.help_requests h JOIN fleet.agents a USING (agent_id)
                                 WHERE a.name = %s""", (reg.name,)) == [(1,)]


def test_the_standard_library_python_example_runs(api_server, operator_db, new_agent) -> None:
    reg = new_agent("stdlib-doc")
    for expected in (1, 2):
        done = subprocess.run([sys.executable, "-I", "-S", "-c", example("python")], env=_env(api_server, reg),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"runs stored at version {expected}"
    assert query(operator_db, "SELECT value FROM fleet.kv_store WHERE key = %s", (f"{reg.name}/runs",)) == [
        ({"runs": 2},)]
    assert query(operator_db, "SELECT last_message FROM fleet.agents WHERE name = %s", (reg.name,)) == [
        ("stdlib agent up",)]
