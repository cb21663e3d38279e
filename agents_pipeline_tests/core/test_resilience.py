"""A database that restarts or stays down: no heartbeat lost, a clear error past the window."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from agents_pipeline.core import migrations, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, mask_url
from agents_pipeline.core.errors import ConfigurationError, DatabaseUnavailableError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline_tests import pg


@pytest.fixture
def private_cluster():
    """A server of its own, since these tests stop and restart it."""
    with pg.running_cluster(prefix="ap-restart-") as cluster:
        conn = psycopg2.connect(**connect_kwargs(cluster.url()))
        migrations.migrate(conn)
        conn.close()
        yield cluster


def test_restart_in_the_middle_of_a_stream_loses_no_heartbeat(private_cluster) -> None:
    url = private_cluster.url()
    db = Database(url, retry_window=30)
    registry.register_agent(db, "steady")
    sent: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def stream() -> None:
        with SharedState(url, retry_window=30) as shared:
            i = 0
            while not stop.is_set():
                try:
                    shared.heartbeat("steady", message=str(i))
                    sent.append(i)
                except BaseException as exc:  # any raise is a failure of the test
                    errors.append(exc)
                    return
                i += 1

    worker = threading.Thread(target=stream)
    worker.start()
    time.sleep(0.5)
    before_restart = len(sent)
    private_cluster.down()
    time.sleep(1.0)
    private_cluster.up()
    time.sleep(0.5)
    stop.set()
    worker.join(60)
    assert not errors, errors
    assert before_restart > 0 and len(sent) > before_restart
    conn = psycopg2.connect(**connect_kwargs(url))
    with conn.cursor() as cur:
        cur.execute("SELECT array_agg(DISTINCT message::int) FROM fleet.heartbeats")
        stored = set(cur.fetchone()[0])
    conn.close()
    db.close()
    # every acknowledged heartbeat is stored (a retried one may be stored twice, never lost)
    assert set(sent) <= stored


def test_database_down_past_retry_window_raises_clearly(private_cluster) -> None:
    url = private_cluster.url()
    private_cluster.down()
    with SharedState(url, retry_window=1.5) as shared:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="unavailable for 2 s"):
            shared.heartbeat("anyone")
        assert 1.4 <= time.monotonic() - started < 10


def test_password_never_in_errors() -> None:
    url = "postgresql+psycopg2://agent:s3cret-pw@127.0.0.1:1/nodb"
    with SharedState(url, retry_window=0.5) as shared:
        with pytest.raises(DatabaseUnavailableError) as info:
            shared.heartbeat("x")
    assert "s3cret-pw" not in str(info.value)
    assert "***" in str(info.value)
    assert mask_url(url) == "postgresql+psycopg2://agent:***@127.0.0.1:1/nodb"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://u:p@h/db", "must start with postgresql"),
        ("postgresql+psycopg2://u:pw@host:notaport/db", "malformed"),
        ("postgresql+psycopg2://u:pw@host:5432/", "names no database"),
        ("postgresql+psycopg2://u:pw@host/db?evil=1", "unknown parameter"),
    ],
)
def test_malformed_url_is_refused_without_the_password(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        SharedState(url)
    assert "pw@" not in str(info.value) and ":p@" not in str(info.value)
