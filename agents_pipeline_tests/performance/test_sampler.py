"""The sampler against real processes and a real PostgreSQL: finding agents, figures, storage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agents_pipeline.defs.performance.sampler import sample_once


def _sample(engine, **kwargs):
    with engine.begin() as conn:
        return sample_once(conn, host="perfhost", min_gap_s=0.2, **kwargs)


def _metrics(engine, agent_id, at):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT metric, value FROM fleet.perf_samples WHERE agent_id IS NOT DISTINCT FROM :a AND sampled_at = :at"),
            {"a": agent_id, "at": at})
        return dict(rows.all())


def test_agents_found_by_pid_pidfile_and_pattern(engine, spawn, register, tmp_path):
    by_pid, by_file, by_match = spawn(), spawn(), spawn(tag="perf-pattern-agent-7f3a")
    pidfile = tmp_path / "agent.pid"
    pidfile.write_text(f"{by_file.pid}\n")
    ids = {
        "pid": register("by-pid", pid=by_pid.pid),
        "pidfile": register("by-pidfile", pidfile=str(pidfile)),
        "match": register("by-match", match=r"perf-pattern-agent-7f3a$"),
    }
    first = _sample(engine)
    assert first.baseline and not first.missing
    time.sleep(0.5)
    second = _sample(engine)
    assert not second.baseline
    found = {a.name: a for a in second.agents}
    assert {n: (a.found, a.processes) for n, a in found.items()} == {
        "by-pid": (True, 1), "by-pidfile": (True, 1), "by-match": (True, 1)}
    for how, agent_id in ids.items():
        first_rows = _metrics(engine, agent_id, first.sampled_at)
        rows = _metrics(engine, agent_id, second.sampled_at)
        assert "cpu_percent" not in first_rows, "the first sample only sets the baseline"
        assert rows["process_found"] == 1.0 and rows["process_count"] == 1.0, how
        assert rows["rss_bytes"] > 1_000_000 and rows["threads"] >= 1 and rows["fds"] >= 3, how
        assert 0.0 <= rows["cpu_percent"] < 50.0, how           # a sleeper
        assert rows["cpu_time_s"] >= first_rows["cpu_time_s"], how
        assert "io_read_bytes" in rows and "ctx_switches_per_s" in rows, how
    with engine.connect() as conn:
        counters = conn.execute(sa.text("SELECT counters FROM fleet.perf_sampler_state WHERE host = 'perfhost'")).scalar()
    tracked = {how: [key.split(":")[0] for key in counters["procs"][str(aid)]] for how, aid in ids.items()}
    assert tracked == {"pid": [str(by_pid.pid)], "pidfile": [str(by_file.pid)], "match": [str(by_match.pid)]}


def test_busy_agent_cpu_from_stored_counters(engine, spawn, register):
    """Regression: CPU percent must come from the counters stored with the previous sample,
    not from a first cpu_percent() call in a fresh process (always 0.0)."""
    busy, idle = spawn("busy"), spawn()
    busy_id, idle_id = register("busy", pid=busy.pid), register("idle", pid=idle.pid)
    time.sleep(0.3)
    first = _sample(engine)
    time.sleep(1.5)
    second = _sample(engine)
    busy_rows, idle_rows = _metrics(engine, busy_id, second.sampled_at), _metrics(engine, idle_id, second.sampled_at)
    first_busy = _metrics(engine, busy_id, first.sampled_at)
    elapsed = (second.sampled_at - first.sampled_at).total_seconds()
    expected = 100.0 * (busy_rows["cpu_time_s"] - first_busy["cpu_time_s"]) / elapsed
    assert abs(busy_rows["cpu_percent"] - expected) < 0.5
    assert busy_rows["cpu_percent"] > 20.0 > idle_rows["cpu_percent"]
    host = second.host_metrics
    assert 0.0 <= host["cpu_percent"] <= 100.0
    assert sum(1 for m in host if m.startswith("cpu_percent:cpu")) == host["cores"]
    assert any(m.startswith("disk_used_percent:") for m in host)
    assert host["net_recv_bytes_per_s"] >= 0.0 and host["disk_write_bytes_per_s"] >= 0.0
    assert 0.0 < host["memory_percent"] < 100.0 and host["sampler_cpu_ms"] > 0.0


def test_restarted_process_is_not_charged_a_negative_delta(engine, spawn, register):
    """Regression: a new process under the same agent (new pid) starts its own counters."""
    first_proc = spawn("busy", tag="perf-restart-9c1")
    agent_id = register("restarting", match="perf-restart-9c1")
    time.sleep(0.5)
    _sample(engine)
    first_proc.kill()
    first_proc.wait()
    spawn("sleep", tag="perf-restart-9c1")
    time.sleep(0.5)
    second = _sample(engine)
    rows = _metrics(engine, agent_id, second.sampled_at)
    assert rows["process_found"] == 1.0
    assert 0.0 <= rows["cpu_percent"] < 100.0   # the new process's own time, never negative


def test_locator_problems_are_named(engine, register, tmp_path):
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not-a-pid")
    register("no-file", pidfile=str(tmp_path / "absent.pid"))
    register("garbage", pidfile=str(garbage))
    register("bad-regex", match="([unclosed")
    register("gone", pid=4_000_000)
    register("unlocated")
    result = _sample(engine)
    problems = {a.name: a.problem for a in result.agents}
    assert "unreadable" in problems["no-file"]
    assert "'not-a-pid', not a pid" in problems["garbage"]
    assert "not a valid regular expression" in problems["bad-regex"]
    assert "no process with pid 4000000" in problems["gone"]
    assert result.unlocated == ["unlocated"]
    assert {a.name for a in result.missing} == {"no-file", "garbage", "bad-regex", "gone"}


def test_stale_pidfile_is_not_the_agent(engine, spawn, register, tmp_path):
    """Regression: a pidfile older than the process now holding its pid names a reused pid."""
    proc = spawn()
    pidfile = tmp_path / "old.pid"
    pidfile.write_text(str(proc.pid))
    import os
    os.utime(pidfile, (time.time() - 3600, time.time() - 3600))
    register("stale", pidfile=str(pidfile))
    result = _sample(engine)
    assert not result.agents[0].found and "stale" in result.agents[0].problem


def test_second_sampler_within_the_gap_skips(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        assert sample_once(conn, host="perfhost", now=now).skipped is None
    with engine.begin() as conn:
        skipped = sample_once(conn, host="perfhost", now=now + timedelta(seconds=2))
    assert skipped.skipped and "less than 5 s ago" in skipped.skipped
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(DISTINCT sampled_at) FROM fleet.perf_samples")).scalar() == 1
