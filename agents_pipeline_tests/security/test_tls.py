"""TLS end to end: a server started here that refuses plain TCP, reached with verify-full by
the agent library, the Dagster resource and Dagster's own storage, all from the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import migrations, registry, settings
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.localdb import APP_DB, LocalCluster
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.platform.instance_env import dagster_storage_env
from agents_pipeline_tests.security.tls import Certificates, start_tls_cluster, superuser_password


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[LocalCluster, Certificates]]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make test certificates: apt-get install -y openssl")
    cluster, certs = start_tls_cluster()
    try:
        conn = psycopg2.connect(**connect_kwargs(cluster.url()))  # Unix socket: schema setup
        try:
            migrations.migrate(conn)
        finally:
            conn.close()
        yield cluster, certs
    finally:
        cluster.destroy()


def tcp_url(cluster: LocalCluster, host: str = "127.0.0.1", dbname: str = APP_DB, **query: str) -> str:
    return make_url(dbname, user="postgres", host=host, port=int(cluster.state()["port"]),
                    password=superuser_password(cluster), **query)


def _ssl_in_use(conn) -> tuple[bool, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verify_full_succeeds_against_the_servers_name_and_address(tls_server, host):
    cluster, certs = tls_server
    conn = psycopg2.connect(**connect_kwargs(tcp_url(cluster, host, sslmode="verify-full",
                                                     sslrootcert=str(certs.ca))))
    try:
        ssl, version = _ssl_in_use(conn)
        assert ssl is True and version in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()


def test_plain_tcp_is_refused(tls_server):
    cluster, _ = tls_server
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(**connect_kwargs(tcp_url(cluster, sslmode="disable")))


def test_a_certificate_from_another_ca_is_refused(tls_server):
    cluster, certs = tls_server
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(**connect_kwargs(tcp_url(cluster, sslmode="verify-full", sslrootcert=str(certs.other_ca))))


def test_a_name_outside_the_certificate_is_refused(tls_server):
    """verify-full checks the name, not only the chain: the right server under a wrong name fails."""
    cluster, certs = tls_server
    kwargs = connect_kwargs(tcp_url(cluster, host="db.example.net", sslmode="verify-full", sslrootcert=str(certs.ca)))
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        psycopg2.connect(**kwargs, hostaddr="127.0.0.1")


@pytest.fixture
def tls_env(tls_server, monkeypatch) -> Certificates:
    """TLS settings only in the environment, as an operator sets them."""
    _, certs = tls_server
    monkeypatch.setenv(settings.SSLMODE, "verify-full")
    monkeypatch.setenv(settings.SSLROOTCERT, str(certs.ca))
    return certs


def test_shared_state_and_the_resource_take_tls_from_the_environment(tls_server, tls_env):
    cluster, _ = tls_server
    url = tcp_url(cluster)  # no sslmode in the URL: it comes from AGENTS_PIPELINE_SSLMODE
    db = Database(url, maxconn=1, retry_window=2)
    try:
        token = registry.register_agent(db, f"tls-agent-{os.getpid()}").token
        with db.connection() as conn:
            assert _ssl_in_use(conn)[0] is True
    finally:
        db.close()
    with SharedState(url, agent=f"tls-agent-{os.getpid()}", token=token, retry_window=2) as state:
        assert state.heartbeat() is not None

    from agents_pipeline.platform.resources import PostgresResource

    resource = PostgresResource(url=url)
    try:
        with resource.begin() as conn:
            assert conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar() is True
    finally:
        resource.teardown_after_execution(None)


def test_wrong_ca_in_the_environment_fails_with_a_masked_url(tls_server, tls_env, monkeypatch):
    cluster, certs = tls_server
    monkeypatch.setenv(settings.SSLROOTCERT, str(certs.other_ca))
    url = tcp_url(cluster)
    db = Database(url, maxconn=1, retry_window=0.5)
    try:
        with pytest.raises(Exception) as info:
            db.transaction(lambda cur: cur.execute("SELECT 1"))
    finally:
        db.close()
    assert "certificate verify failed" in str(info.value)
    assert superuser_password(cluster) not in str(info.value)


def _dagster_instance_check(env: dict[str, str], home: Path, wrong_ca: Path) -> subprocess.CompletedProcess:
    """The instance from dagster.yaml with the mapped variables, then, in a second process (the
    storage keeps its connections pooled for the life of a process), with PGSSLROOTCERT pointing
    at the wrong CA."""
    # deploy/dagster.yaml is the one that reads the mapped variables (the project's resolves itself).
    shutil.copy(settings.PROJECT_DIR / "deploy" / "dagster.yaml", home / "dagster.yaml")
    code = (
        "import os, sys\n"
        "import dagster as dg\n"
        "if len(sys.argv) > 1:\n"
        "    os.environ['PGSSLROOTCERT'] = sys.argv[1]\n"
        "try:\n"
        "    print('runs', dg.DagsterInstance.get().get_runs_count(), flush=True)\n"
        "    print('wrong CA accepted' if len(sys.argv) > 1 else 'right CA accepted')\n"
        "except Exception as exc:\n"
        "    print('wrong CA refused:' if len(sys.argv) > 1 else 'right CA refused:', exc)\n"
    )
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AGENTS_PIPELINE_"))}
    full.update(env, DAGSTER_HOME=str(home))
    right = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=180)
    wrong = subprocess.run([sys.executable, "-c", code, str(wrong_ca)], env=full, capture_output=True, text=True,
                           timeout=180)
    return subprocess.CompletedProcess(right.args, right.returncode or wrong.returncode,
                                       right.stdout + wrong.stdout, right.stderr + wrong.stderr)


def test_dagster_storage_settings_carry_tls(tls_server, tls_env):
    """The variables `agents-pipeline dev` exports for dagster.yaml carry the TLS settings, and a
    Unix-socket URL keeps its socket in PGHOST while TCP hosts go in the storage's hostname."""
    cluster, certs = tls_server
    tcp = dagster_storage_env(tcp_url(cluster))
    assert (tcp["PGSSLMODE"], tcp["PGSSLROOTCERT"]) == ("verify-full", str(certs.ca))
    assert tcp["AGENTS_PIPELINE_DAGSTER_PG_HOST"] == "127.0.0.1" and "PGHOST" not in tcp
    socket = dagster_storage_env(cluster.url())
    assert socket["AGENTS_PIPELINE_DAGSTER_PG_HOST"] == "" and socket["PGHOST"] == str(cluster.sockdir)


@pytest.mark.slow
def test_dagster_storage_reaches_the_tls_server_with_the_mapped_settings(tls_server, tls_env, tmp_path):
    """dagster.yaml cannot read TLS settings itself: instance_env maps AGENTS_PIPELINE_SSL* to
    PGSSLMODE/PGSSLROOTCERT, which libpq under dagster-postgres reads. Plain TCP is refused by
    this server, so success means TLS; the wrong CA failing shows the settings are the ones used."""
    cluster, certs = tls_server
    env = dagster_storage_env(tcp_url(cluster))
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == str(certs.ca)
    assert env["AGENTS_PIPELINE_DAGSTER_PG_HOST"] == "127.0.0.1"
    proc = _dagster_instance_check(env, tmp_path, certs.other_ca)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runs 0" in proc.stdout and "right CA accepted" in proc.stdout
    assert "wrong CA refused:" in proc.stdout and "certificate verify failed" in proc.stdout + proc.stderr
    assert superuser_password(cluster) not in proc.stderr + proc.stdout
