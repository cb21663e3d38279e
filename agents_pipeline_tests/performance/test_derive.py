"""Percentages and rates from two sets of counters (pure; synthetic readings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents_pipeline.defs.performance.collect import AgentReading, HostReading, ProcessReading, Target
from agents_pipeline.defs.performance.derive import derive

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def host(cpu, *, boot=1000.0, disk=(0, 0), net=(0, 0)) -> HostReading:
    return HostReading(boot_time=boot, cpu=tuple(cpu), load=(0.5, 0.4, 0.3), cores=len(cpu), memory_total=100,
                       memory_available=40, memory_percent=60.0, swap_total=0, swap_used=0, swap_percent=0.0,
                       disks={"/": (25.0, 75)}, disk_read_bytes=disk[0], disk_write_bytes=disk[1],
                       net_recv_bytes=net[0], net_sent_bytes=net[1])


def proc(pid, start, cpu_s, *, io=(0, 0), ctx=0) -> ProcessReading:
    return ProcessReading(pid=pid, create_time=start, cpu_s=cpu_s, rss_bytes=1 << 20, threads=2, fds=5,
                          read_bytes=io[0], write_bytes=io[1], ctx_switches=ctx)


def agent(*procs) -> AgentReading:
    return AgentReading(Target(7, "a", pid=1), tuple(procs))


def values(derived, agent_id=None):
    return {m: v for a, m, v in derived.rows if a == agent_id}


def test_rates_from_previous_counters():
    first = derive(host([(10, 100), (20, 100)], disk=(1000, 0), net=(0, 500)), [agent(proc(1, 50.0, 5.0))], T0, None, None)
    assert first.baseline and "cpu_percent" not in values(first) and "cpu_percent" not in values(first, 7)
    second = derive(host([(40, 160), (20, 160)], disk=(7000, 600), net=(1200, 500)),
                    [agent(proc(1, 50.0, 35.0, io=(600, 0), ctx=120))], T0 + timedelta(seconds=60), T0, first.state)
    h, a = values(second), values(second, 7)
    assert h["cpu_percent"] == pytest.approx(100 * 30 / 120)           # busy 30 of 120 core-seconds
    assert (h["cpu_percent:cpu0"], h["cpu_percent:cpu1"]) == (pytest.approx(50.0), 0.0)
    assert h["disk_read_bytes_per_s"] == 100.0 and h["disk_write_bytes_per_s"] == 10.0
    assert h["net_recv_bytes_per_s"] == 20.0 and h["net_sent_bytes_per_s"] == 0.0
    assert a["cpu_percent"] == pytest.approx(50.0) and a["io_read_bytes_per_s"] == 10.0
    assert a["ctx_switches_per_s"] == 2.0 and a["cpu_time_s"] == 35.0


def test_cpu_percent_passes_100_on_several_cores():
    first = derive(host([(0, 10)]), [agent(proc(1, 50.0, 0.0))], T0, None, None)
    second = derive(host([(0, 20)]), [agent(proc(1, 50.0, 25.0))], T0 + timedelta(seconds=10), T0, first.state)
    assert values(second, 7)["cpu_percent"] == pytest.approx(250.0)


def test_restart_new_process_counts_from_its_start_and_old_one_is_forgotten():
    first = derive(host([(0, 10)]), [agent(proc(1, 50.0, 900.0))], T0, None, None)
    restarted = agent(proc(2, T0.timestamp() + 30, 6.0))
    second = derive(host([(0, 20)]), [restarted], T0 + timedelta(seconds=60), T0, first.state)
    assert values(second, 7)["cpu_percent"] == pytest.approx(10.0)     # 6 s of its own, never 6 - 900


def test_untracked_old_process_waits_for_a_baseline():
    first = derive(host([(0, 10)]), [agent(proc(1, 50.0, 1.0))], T0, None, None)
    both = agent(proc(1, 50.0, 2.0), proc(3, 60.0, 500.0))           # pid 3 ran before T0 but was not matched
    second = derive(host([(0, 20)]), [both], T0 + timedelta(seconds=60), T0, first.state)
    assert "cpu_percent" not in values(second, 7) and values(second, 7)["process_count"] == 2.0


@pytest.mark.parametrize("later, reading", [
    (timedelta(minutes=16), host([(5, 20)])),                    # a gap longer than 15 min
    (timedelta(seconds=60), host([(5, 20)], boot=2000.0)),       # a reboot
    (timedelta(seconds=-5), host([(5, 20)])),                    # the clock went back
])
def test_no_rates_after_gap_reboot_or_clock_step(later, reading):
    first = derive(host([(0, 10)], disk=(100, 100)), [], T0, None, None)
    second = derive(reading, [], T0 + later, T0, first.state)
    assert second.baseline and "cpu_percent" not in values(second) and "disk_read_bytes_per_s" not in values(second)


def test_counter_reset_and_core_change_drop_only_what_they_break():
    first = derive(host([(0, 10), (0, 10)], disk=(100, 100)), [], T0, None, None)
    second = derive(host([(5, 20)], disk=(50, 200)), [], T0 + timedelta(seconds=10), T0, first.state)
    h = values(second)
    assert not any(m.startswith("cpu_percent") for m in h) and "disk_read_bytes_per_s" not in h
    assert h["disk_write_bytes_per_s"] == 10.0 and not second.baseline


def test_missing_agent_reports_found_zero_only():
    derived = derive(host([(0, 10)]), [AgentReading(Target(9, "gone", pid=5), (), "no process")], T0, None, None)
    assert values(derived, 9) == {"process_found": 0.0, "process_count": 0.0}
