"""The archiver yields the CPU to the agents' writers: its own thread and its PostgreSQL backend
run at a low priority (the test server runs on this host, as `make run`'s does)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agents_pipeline.defs.retention import priority
from agents_pipeline.defs.retention.units import connect


def _in_a_thread(fn):
    """Runs ``fn`` in a thread of its own: priorities are per thread, and pytest's must stay."""
    out = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


@pytest.mark.parametrize("niceness, policy", [("7", os.SCHED_OTHER), ("19", os.SCHED_IDLE)])
def test_the_archiver_and_its_backend_yield_the_cpu(db_url, monkeypatch, niceness, policy):
    monkeypatch.setenv(priority.NICENESS_ENV, niceness)
    with connect(db_url) as conn:
        pid = priority._local_backend_pid(conn)
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) < 7 and os.sched_getscheduler(pid) == os.SCHED_OTHER

        def lower():
            done = priority.yield_cpu_to_writers(conn)
            return done, os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)

        done, own_niceness, own_policy = _in_a_thread(lower)
        assert done == {"archiver": True, "backend": True, "serial": True}     # and no parallel workers
        assert os.getpriority(os.PRIO_PROCESS, pid) == int(niceness) == own_niceness
        assert os.sched_getscheduler(pid) == policy == own_policy
        assert os.sched_getscheduler(0) == os.SCHED_OTHER       # pytest's thread untouched
        with conn.cursor() as cur:            # the session still works
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)


def test_another_process_is_never_taken_for_the_backend(db_url, monkeypatch):
    """A pid whose process title is not this session's (as a remote server's pid would be) is left alone."""
    with connect(db_url) as conn:
        real = priority._local_backend_pid(conn)
        own_title = Path(f"/proc/{os.getpid()}/cmdline")      # this Python process, not a backend
        monkeypatch.setattr(priority, "Path", lambda _: own_title)
        assert priority._local_backend_pid(conn) is None
        assert real is not None


def test_a_bad_niceness_setting_is_named(db_url, monkeypatch):
    monkeypatch.setenv(priority.NICENESS_ENV, "low")
    with pytest.raises(ValueError, match=priority.NICENESS_ENV):
        priority.yield_cpu_to_writers()    # refused before any priority changes
