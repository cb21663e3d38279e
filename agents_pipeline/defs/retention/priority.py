"""The archiver yields the CPU to the agents' heartbeat writers: its own threads and, when
PostgreSQL runs on this host, its backend run at a low priority (``AGENTS_PIPELINE_ARCHIVE_NICENESS``).

Why: measured on 2 cores, a day's export at normal priority tripled the writers' p99
(docs/BENCHMARKS.md); see ``yield_cpu_to_writers``.
"""

from __future__ import annotations

import os
from pathlib import Path

NICENESS_ENV = "AGENTS_PIPELINE_ARCHIVE_NICENESS"


def _niceness() -> int:
    try:
        target = int(os.environ.get(NICENESS_ENV, "19"))
    except ValueError:
        raise ValueError(f"{NICENESS_ENV} must be an integer from 0 to 19") from None
    return min(max(target, 0), 19)


def _renice(pid: int, target: int) -> bool:
    """Niceness ``target``; at 19 also Linux's SCHED_IDLE class, which runs only on a core
    nothing else wants and is preempted at once by any waking writer (nice 19 alone still
    takes its time slices: the writers' p99 went from 2.7x to 2.0x with it)."""
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < target:
            os.setpriority(os.PRIO_PROCESS, pid, target)
        if target >= 19 and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return True
    except OSError:         # not ours to renice (another user, no CAP_SYS_NICE): run as is
        return False


def _local_backend_pid(conn) -> int | None:
    """The pid of ``conn``'s backend when it is a process on this host that this process can
    see: a Unix-socket or loopback connection whose pid carries PostgreSQL's process title for
    this user and database (a remote server's pid would name some unrelated local process)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid(), coalesce(host(inet_server_addr()), ''), current_user, "
                    "current_database()")
        pid, address, user, database = cur.fetchone()
    conn.commit()
    if address not in ("", "127.0.0.1", "::1"):
        return None
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    # "postgres: [cluster_name: ]user database host activity"
    return pid if title.startswith("postgres: ") and f" {user} {database} " in title else None


def yield_cpu_to_writers(conn=None) -> dict[str, bool]:
    """Lowers the CPU priority of this thread (and of the threads it starts, pyarrow's pool
    among them) and, when PostgreSQL runs on this host and we may, of ``conn``'s backend, to
    ``AGENTS_PIPELINE_ARCHIVE_NICENESS`` (default 19), as backups run under ``nice -n 19``.

    Why: a day's export and read-back keep a core busy for about a second (the archiver's
    backend and its Python), and on a small machine the agents' heartbeat backends then wait
    for a CPU: measured on 2 cores, the writers' p99 tripled, with 17 % of writes during the
    export slower than the idle p99 (docs/BENCHMARKS.md). PostgreSQL has no per-session CPU
    priority, so the backend is reniced from outside as the pg_prioritize extension does.
    Never raises a priority (that needs privileges); returns what it could lower.

    At any niceness above 0 the session also runs its queries without parallel workers
    (``max_parallel_workers_per_gather = 0``): they are processes of their own, started per
    query at the server's normal priority, so the day's fingerprint scan ran on both cores
    beside a reniced leader (1.4 archiver processes on a CPU on average during the export,
    measured) and took the writers' CPU whatever the leader's priority."""
    target = _niceness()
    done = {"archiver": _renice(0, target)}
    if conn is not None:
        pid = _local_backend_pid(conn)
        done["backend"] = pid is not None and _renice(pid, target)
        if target > 0:
            done["serial"] = _no_parallel_workers(conn)
    return done


def _no_parallel_workers(conn) -> bool:
    """Session-wide: no parallel workers for ``conn``'s queries."""
    with conn.cursor() as cur:
        cur.execute("SET max_parallel_workers_per_gather = 0")
        cur.execute("SHOW max_parallel_workers_per_gather")
        serial = cur.fetchone()[0] == "0"
    conn.commit()
    return serial
