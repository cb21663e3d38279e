"""PostgreSQL going away under the API: the server stays up, answers 503 with Retry-After while
the database is gone, and loses no acknowledged ping across a restart, even a crash."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.roles import roles
from agents_pipeline_tests import pg
from agents_pipeline_tests.api.server import ApiServer, start
from agents_pipeline_tests.security.conftest import role_url

CLIENTS = 50


@pytest.fixture(scope="module")
def durable_cluster() -> Iterator[LocalCluster]:
    """A server of its own (these tests stop it), with commits made durable as in production,
    so that "acknowledged" means what it says after a crash too."""
    with pg.running_cluster(prefix="ap-api-restart-", settings=("fsync=on", "synchronous_commit=on")) as cluster:
        conn = psycopg2.connect(**connect_kwargs(cluster.url()))
        migrations.migrate(conn)
        conn.close()
        yield cluster


@pytest.fixture(scope="module")
def restart_server(durable_cluster: LocalCluster, tmp_path_factory) -> Iterator[ApiServer]:
    log_path = Path(tmp_path_factory.mktemp("api-restart")) / "server.log"
    # A shorter wait for the database than the default 3 s keeps the outage test short.
    server = start(role_url(durable_cluster.url(), durable_cluster, roles().api), log_path,
                   extra_env={"AGENTS_PIPELINE_API_DB_WAIT_S": "1.5"})
    yield server
    server.stop()


def _operator(cluster: LocalCluster, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(cluster.url()))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _crash(cluster: LocalCluster) -> None:
    """Stops the server as a power cut would (no checkpoint, no flush beyond what committed)."""
    bindir = Path(cluster.state()["bindir"])
    cluster._run([str(bindir / "pg_ctl"), "stop", "-D", str(cluster.datadir), "-m", "immediate", "-w"])


def test_a_crash_under_50_clients_loses_no_acknowledged_ping(durable_cluster, restart_server) -> None:
    _operator(durable_cluster, """UPDATE fleet.system_config SET value = '{"rate_per_s": 100000, "burst": 100000}'
                                  WHERE key = 'rate_limit:heartbeats'""")
    keys = [k for (k,) in _operator(durable_cluster, """INSERT INTO fleet.agents (name)
        SELECT 'restart-' || g FROM generate_series(1, %s) g RETURNING ping_key""", (CLIENTS,))]
    acked: list[str] = []
    unavailable: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client(n: int, key: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", restart_server.port, timeout=30)
        i = 0
        while not stop.is_set():
            body = f"{n}:{i}"
            try:
                conn.request("POST", f"/ping/{key}", body=body.encode())
                resp = conn.getresponse()
                resp.read()
            except OSError as exc:              # the server must stay up: no connection may fail
                failures.append(f"{body}: {exc!r}")
                return
            if resp.status == 200:
                acked.append(body)
            elif resp.status == 503 and resp.getheader("Retry-After"):
                unavailable.append(body)
                time.sleep(0.1)
            else:
                failures.append(f"{body}: HTTP {resp.status}")
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(n, k)) for n, k in enumerate(keys)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    before = len(acked)
    _crash(durable_cluster)
    time.sleep(0.5)
    durable_cluster.up()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert failures == []
    assert before > 100 and len(acked) > before + 100, (before, len(acked))
    stored = {m for (m,) in _operator(durable_cluster, "SELECT message FROM fleet.heartbeats")}
    lost = sorted(set(acked) - stored)
    assert lost == [], f"{len(lost)} acknowledged pings lost, e.g. {lost[:5]}"


def test_while_postgres_is_down_pings_get_503_with_retry_after_and_the_server_stays_up(
        durable_cluster, restart_server) -> None:
    [(key,)] = _operator(durable_cluster, "INSERT INTO fleet.agents (name) VALUES ('outage') RETURNING ping_key")
    durable_cluster.down()
    try:
        started = time.monotonic()
        status, headers, body = restart_server.request("GET", f"/ping/{key}")
        waited = time.monotonic() - started
        assert (status, body) == (503, b"database unavailable; retry later\n")
        assert int(headers["retry-after"]) >= 1 and 1.4 < waited < 8
        assert restart_server.request("GET", "/healthz")[0] == 200
        status, headers, _ = restart_server.post_json("/v1/agents/outage/heartbeats", {"heartbeats": [{}]}, "apt_x")
        assert status == 503 and int(headers["retry-after"]) >= 1
    finally:
        durable_cluster.up()
    assert restart_server.request("GET", f"/ping/{key}")[0] == 200
    assert _operator(durable_cluster, "SELECT heartbeat_count FROM fleet.agents WHERE name = 'outage'") == [(1,)]
    assert restart_server.proc.poll() is None
