"""A real streaming replica of a test cluster, for the read-replica and failover tests.

``pg_basebackup -R`` copies the primary's data folder and writes the standby's connection to it
(standby.signal, primary_conninfo); the copy then runs as a second ``LocalCluster`` on a port of
its own. Debian's server binaries run as the ``postgres`` user when the tests run as root, as the
primary's do (LocalCluster._run). The standby names itself with ``cluster_name``, which the WAL
receiver sends as its application name, so the primary's ``synchronous_standby_names`` can name it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import APP_DB, SUPERUSER, LocalCluster, free_port, scratch_home
from agents_pipeline_tests import pg

STANDBY_NAME = "ap_standby"


def base_backup(primary: LocalCluster, prefix: str = "ap-test-replica-") -> LocalCluster:
    """A standby of ``primary`` (not started): its data folder copied by pg_basebackup."""
    state = primary.state()
    home = scratch_home(prefix)
    standby = LocalCluster(home, extra_settings=(*primary.extra_settings, f"cluster_name={STANDBY_NAME}"))
    for folder in (standby.sockdir,):
        folder.mkdir(mode=0o700)
        standby._chown(folder)
    bindir = Path(state["bindir"])
    standby._run([str(bindir / "pg_basebackup"), "-D", str(standby.datadir), "-h", str(primary.sockdir),
                  "-p", str(state["port"]), "-U", SUPERUSER, "-R", "-X", "stream", "-c", "fast"])
    standby._save_state({"bindir": str(bindir), "port": free_port()})
    return standby


def wait_caught_up(primary: LocalCluster, timeout_s: float = 30.0) -> None:
    """Until the standby has replayed everything the primary had written when this was called."""
    with pg.admin_connect(primary) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_insert_lsn()")   # commits not yet flushed (synchronous_commit=off) too
        (target,) = cur.fetchone()
        deadline = time.monotonic() + timeout_s
        while True:
            cur.execute("""SELECT coalesce(bool_and(replay_lsn >= %s::pg_lsn), false) AND count(*) > 0
                           FROM pg_stat_replication""", (target,))
            if cur.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"standby did not replay up to {target} in {timeout_s:.0f} s")
            time.sleep(0.05)


def set_synchronous(primary: LocalCluster, on: bool) -> None:
    """The primary waits for the standby's flush before a commit returns (or stops waiting)."""
    conn = pg.admin_connect(primary)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (STANDBY_NAME if on else "",))
            # The test clusters run with synchronous_commit=off for speed; a synchronous standby
            # needs the commit to wait (remote_apply: a promoted standby has applied it too).
            cur.execute("ALTER SYSTEM SET synchronous_commit = %s", ("remote_apply" if on else "off",))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def kill_postmaster(cluster: LocalCluster) -> None:
    """SIGKILL to the server's postmaster and every process it started at once, as a machine
    that dies takes them all: no shutdown checkpoint, no goodbye to clients or standbys."""
    pid = int((cluster.datadir / "postmaster.pid").read_text().splitlines()[0])
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:   # the field after the state: ppid
                children.append(int(proc.name))
    for target in (pid, *children):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for target in (pid, *children):
        while time.monotonic() < deadline:
            try:
                os.kill(target, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def promote(standby: LocalCluster, timeout_s: float = 60.0) -> None:
    """The standby becomes a primary (pg_promote waits until it accepts writes)."""
    conn = psycopg2.connect(**connect_kwargs(standby.url("postgres")))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_promote(true, %s)", (int(timeout_s),))
            assert cur.fetchone()[0], "pg_promote did not finish"
    finally:
        conn.close()


def multi_host_url(first: LocalCluster, second: LocalCluster, dbname: str = APP_DB,
                   attrs: str = "read-write") -> str:
    """One URL naming both servers, libpq's way: the first that is ``attrs`` serves."""
    hosts = f"{first.sockdir},{second.sockdir}"
    ports = f"{first.state()['port']},{second.state()['port']}"
    return (f"postgresql+psycopg2://{SUPERUSER}@/{dbname}"
            f"?host={hosts}&port={ports}&target_session_attrs={attrs}&connect_timeout=2")


@contextmanager
def running_standby(primary: LocalCluster, *, synchronous: bool = False) -> Iterator[LocalCluster]:
    """A started streaming standby of ``primary``, destroyed afterwards."""
    standby = base_backup(primary)
    try:
        standby.up()
        set_synchronous(primary, synchronous)
        wait_caught_up(primary)
        yield standby
    finally:
        try:
            set_synchronous(primary, False)
        except psycopg2.Error:
            pass  # the primary was killed by the test
        standby.destroy()


def describe(cluster: LocalCluster) -> str:
    """For failure messages: where the cluster is and its log's tail."""
    tail = cluster.logfile.read_text(errors="replace").splitlines()[-5:] if cluster.logfile.exists() else []
    return json.dumps({"home": str(cluster.home), "log": tail})
