"""Shared fixtures: one real PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agents_pipeline.core.connection import Database
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline_tests import pg

# The archiver lowers its thread to SCHED_IDLE; in-process archive tests would leave pytest's own
# thread starved behind the test servers for the rest of the session. test_priority covers it.
os.environ["AGENTS_PIPELINE_ARCHIVE_NICENESS"] = "0"

# Assets that call the network retry a failed step after a minute (platform/retry.py); the tests
# that fail them on purpose would wait minutes. Their retries still run, without the wait.
os.environ.setdefault("AGENTS_PIPELINE_STEP_RETRY_DELAY_S", "0")

# The test process runs in a non-UTC zone too (the server runs in pg.SERVER_TIMEZONE).
os.environ["TZ"] = "America/St_Johns"
try:
    import time

    time.tzset()
except AttributeError:  # pragma: no cover - not on Linux
    pass


#: Packages whose fixtures are package-scoped (one `dagster dev`, one attack run shared by their
#: modules): under pytest-xdist all their tests go to one worker, or each worker would pay again.
_SHARED_FIXTURE_PACKAGES = ("ui", "security/hostile")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs two workers (`-n 2 --dist loadgroup`): each module's tests stay on one
    worker (module fixtures are made once), and so does each package listed above."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    root = Path(__file__).parent
    for item in items:
        relative = Path(str(item.path)).relative_to(root).as_posix()
        group = next((p for p in _SHARED_FIXTURE_PACKAGES if relative.startswith(p + "/")), relative)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    with pg.running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_template(pg_cluster: LocalCluster) -> str:
    return pg.create_template(pg_cluster)


@pytest.fixture
def db_url(pg_cluster: LocalCluster, pg_template: str) -> Iterator[str]:
    """URL of a fresh database with the whole schema, dropped after the test."""
    name = pg.fresh_database(pg_cluster, pg_template)
    yield pg_cluster.url(name)
    pg.drop_database(pg_cluster, name)


@pytest.fixture
def db_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fresh database as AGENTS_PIPELINE_DATABASE_URL (for the CLI and Dagster's EnvVar)."""
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", db_url)
    monkeypatch.delenv("AGENTS_PIPELINE_AGENT_TOKEN", raising=False)
    return db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """SQLAlchemy engine on the fresh database (room for the tests that write from threads)."""
    eng = sa.create_engine(db_url, pool_size=4, max_overflow=8)
    yield eng
    eng.dispose()


@pytest.fixture
def dagster_storage_url(pg_cluster: LocalCluster) -> Iterator[str]:
    """An empty database for Dagster's own storage (dagster-postgres creates its tables)."""
    name = pg.empty_database(pg_cluster, "dagster")
    yield pg_cluster.url(name)
    pg.drop_database(pg_cluster, name)


@pytest.fixture
def empty_db_url(pg_cluster: LocalCluster) -> Iterator[str]:
    """A database with nothing in it: no template, so whatever runs builds the whole schema."""
    name = pg.empty_database(pg_cluster, "empty")
    yield pg_cluster.url(name)
    pg.drop_database(pg_cluster, name)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url, maxconn=4, retry_window=5)
    yield db
    db.close()


@pytest.fixture
def state(db_url: str) -> Iterator[SharedState]:
    """SharedState with operator credentials (may act for any agent without a token)."""
    with SharedState(db_url, retry_window=5) as s:
        yield s
