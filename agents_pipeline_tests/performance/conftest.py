"""Fixtures for the performance tests: a SQLAlchemy engine on the fresh database, and real
processes (busy or sleeping Python children) that the tests register as agents."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from agents_pipeline.core.registry import register_agent

BUSY = "import sys, time\nwhile True:\n    pass\n"
SLEEPY = "import time\nwhile True:\n    time.sleep(1)\n"


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts a Python child that busy-loops or sleeps; a unique tag on its command line lets a
    pattern find exactly this process. Every child is killed at the end of the test."""
    children: list[subprocess.Popen] = []

    def start(kind: str = "sleep", tag: str | None = None) -> subprocess.Popen:
        code = BUSY if kind == "busy" else SLEEPY
        proc = subprocess.Popen([sys.executable, "-c", code, tag or f"perf-test-{uuid.uuid4().hex}"])
        proc.tag = tag  # type: ignore[attr-defined]
        children.append(proc)
        return proc

    yield start
    for child in children:
        child.kill()
        child.wait(timeout=10)


@pytest.fixture
def register(database):
    """register(name, **locator) -> agent_id, through the registry the CLI uses."""

    def reg(name: str, **kwargs) -> int:
        return register_agent(database, name, **kwargs).agent_id

    return reg


@pytest.fixture
def quiet_host(engine) -> dict:
    """Host rules off fleet-wide, so that a busy shared test machine (or a full disk) cannot
    add host alerts to what a test about agents asserts. Returns the layer it stored."""
    import json

    layer = {"host_cpu_percent": {"enabled": False}, "host_memory_percent": {"enabled": False},
             "disk_used_percent": {"enabled": False}}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.system_config SET value = CAST(:v AS jsonb) "
                             "WHERE key = 'performance.thresholds'"), {"v": json.dumps(layer)})
    return layer
