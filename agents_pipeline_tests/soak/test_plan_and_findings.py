"""The soak's schedule and its bookkeeping, on synthetic records: a lost heartbeat, a missed
death and a false alert must each be reported, or the long soak's verdict means nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agents_pipeline.soak import findings as fd
from agents_pipeline.soak import plan
from agents_pipeline.soak.harness import Injected, SoakRun
from agents_pipeline.soak.usage import UsageSample


@pytest.mark.parametrize("minutes", [2, 10, 60])
def test_every_fault_kind_and_a_quiet_end(minutes):
    faults = plan.schedule(minutes)
    kinds = Counter(f.kind for f in faults)
    wanted = set(plan.KINDS) - ({"collapse", "database_pause"} if minutes < 10 else set())
    assert set(kinds) == wanted
    assert kinds["collapse"] == (1 if minutes >= 10 else 0)
    assert all(b.at_s > a.at_s for a, b in zip(faults, faults[1:], strict=False))
    last = max(f.at_s + f.hold_s for f in faults)
    assert last <= minutes * 60 - 25    # the last recovery is seen before the report is read
    # No infrastructure fault while a killed agent's death is still to be noticed.
    for kill in (f for f in faults if f.kind in ("agent_kill", "collapse")):
        blind = [f for f in faults if f.kind in plan.INFRASTRUCTURE
                 and kill.at_s <= f.at_s < kill.at_s + kill.hold_s]
        assert blind == []


def test_too_short_a_soak_is_refused():
    with pytest.raises(ValueError, match="at least 2 minutes"):
        plan.schedule(1.5)


def _ledger(tmp_path: Path, lines: list[str]) -> fd.Ledger:
    (tmp_path / "agents-000.tsv").write_text("".join(line + "\n" for line in lines) + "ack\tcut-by-kill")
    return fd.read_ledgers(tmp_path)


def _stored(messages: dict[str, int], alerts: list[dict]) -> fd.Stored:
    return fd.Stored(Counter(messages), alerts, [], 10 << 20, 1 << 20, 1000, 30)


def test_delivery_counts_a_lost_and_a_duplicated_heartbeat(tmp_path):
    ledger = _ledger(tmp_path, ["ack\ta\tsoak:1:1\t100.0\t", "ack\ta\tsoak:1:2\t105.0\t",
                                "refused\ta\tsoak:1:3\t106.0\t429", "error\ta\tsoak:1:4\t140.0\tDatabaseUnavailableError"])
    got = fd.delivery(ledger, _stored({"a soak:1:1": 2}, []))
    assert got == {"acknowledged": 2, "stored_of_acknowledged": 1, "lost": 1, "lost_examples": ["a soak:1:2"],
                   "duplicates": 1, "refused_by_rate_limit": 1, "not_acknowledged": 1}


def _run() -> SoakRun:
    run = SoakRun(2, 8, Path("."), started_at=1000.0, ended_at=1120.0)
    run.injected = [Injected("agent_kill", 1020.0, 1060.0, ["agents-001"], ["b", "c"]),
                    Injected("daemon_kill", 1090.0, 1093.0)]
    return run


def test_detection_latency_a_missed_death_and_a_false_alert(tmp_path):
    ledger = _ledger(tmp_path, ["ack\tb\tsoak:1:1\t1019.0\t", "ack\tb\tsoak:2:1\t1061.0\t"])
    alerts = [
        {"alert_id": 1, "kind": "agent_down", "key": "agent_down:2", "agent": "b", "opened": 1034.0,
         "resolved": 1061.0, "details": {}},
        {"alert_id": 2, "kind": "agent_down", "key": "agent_down:9", "agent": "z", "opened": 1050.0,
         "resolved": 1070.0, "details": {}},     # nobody killed z
        {"alert_id": 3, "kind": "agent_down", "key": "agent_down:7", "agent": "agents-pipeline:job:x",
         "opened": 1100.0, "resolved": None, "details": {}},    # a run broken by the daemon kill
    ]
    notices = [(1041.5, {"event": "opened", "kind": "agent_down", "agent": "b"}),
               (1010.0, {"event": "opened", "kind": "agent_down", "agent": "c"})]   # before the kill: not it
    detection, accuracy = fd.detection_and_accuracy(_run(), ledger, _stored({}, alerts), notices)
    assert detection["deaths"] == 2 and detection["alerted"] == 1 and detection["missed"] == ["c"]
    assert detection["latency_p50_s"] == 21.5
    assert [a["agent"] for a in accuracy["false_alerts"]] == ["z"]
    assert accuracy["expected"] == 2
    # b: last heartbeat 1019, deadline 1034, back at 1061: 27 s expected, 27 s recorded.
    assert accuracy["resolutions_wrong"] == [] and accuracy["downtime_error_max_s"] == 0.0


def test_a_downtime_stretched_by_the_evaluator_is_reported(tmp_path):
    ledger = _ledger(tmp_path, ["ack\tb\tsoak:1:1\t1019.0\t", "ack\tb\tsoak:2:1\t1061.0\t"])
    alerts = [{"alert_id": 1, "kind": "agent_down", "key": "agent_down:2", "agent": "b", "opened": 1034.0,
               "resolved": 1095.0, "details": {}}]
    _, accuracy = fd.detection_and_accuracy(_run(), ledger, _stored({}, alerts), [])
    (wrong,) = accuracy["resolutions_wrong"]
    assert (wrong["downtime_s"], wrong["expected_s"], wrong["error_s"]) == (61.0, 27.0, 34.0)


def test_memory_is_flat_only_within_five_percent_of_halfway():
    def samples(component: str, pid: int, mbs: list[int]) -> list[UsageSample]:
        return [UsageSample(1000.0 + 10 * i, component, pid, 1.0, mb << 20) for i, mb in enumerate(mbs)]

    flat = fd.resources(samples("api", 1, [50, 60, 60, 61, 62]) + samples("agents-000", 2, [30, 30, 30]))
    assert flat["flat"] and flat["components"]["api"]["end_to_mid"] == round(62 / 60, 3)
    assert flat["components"]["agent hosts"]["hosts"] == 1
    leak = fd.resources(samples("daemon", 3, [100, 100, 100, 110, 120]))
    assert not leak["flat"] and leak["components"]["daemon"]["end_to_mid"] == 1.2
    # A restarted process is judged on its own lifetime, not against its predecessor.
    restarted = fd.resources(samples("daemon", 3, [300, 300]) + samples("daemon", 4, [100, 100, 101]))
    assert restarted["flat"]


def test_a_host_cpu_alert_is_true_only_when_the_harness_saw_the_machine_that_busy(tmp_path):
    alert = {"alert_id": 4, "kind": "host_high_cpu", "key": "threshold:host", "agent": None, "opened": 1100.0,
             "resolved": None, "details": {"rule": "host_cpu_percent", "above": 95.0,
                                           "breach_since": "1970-01-01T00:16:40+00:00"}}   # 1000.0
    busy = [UsageSample(1000.0 + 10 * i, "host", 0, 99.0, 9000) for i in range(11)]
    idle = [UsageSample(1000.0 + 10 * i, "host", 0, 40.0, 1000) for i in range(11)]
    ledger = _ledger(tmp_path, [])
    _, accuracy = fd.detection_and_accuracy(_run(), ledger, _stored({}, [alert]), [], busy)
    assert accuracy["false_alerts"] == [] and accuracy["expected"] == 1
    _, accuracy = fd.detection_and_accuracy(_run(), ledger, _stored({}, [alert]), [], idle)
    assert [a["kind"] for a in accuracy["false_alerts"]] == ["host_high_cpu"]
    assert fd.resources(busy)["host_cpu_mean_percent"] == 99.0 and fd.resources(busy)["load_average_max"] == 9.0


def test_memory_is_judged_at_the_soaks_halfway_for_processes_alive_then():
    rows = [UsageSample(1000.0 + 100 * i, "api", 1, 1.0, mb << 20) for i, mb in enumerate([50, 60, 60, 60, 61])]
    late = [UsageSample(1250.0 + 10 * i, "daemon", 7, 1.0, mb << 20) for i, mb in enumerate([80, 100, 120])]
    got = fd.resources(rows + late, halfway=1200.0)
    assert got["components"]["api"]["end_to_mid"] == round(61 / 60, 3) and got["components"]["api"]["judged"]
    assert got["components"]["daemon"]["judged"] is False and got["components"]["daemon"]["end_to_mid"] is None
    assert got["flat"]


def test_an_agent_killed_twice_has_each_alert_checked_against_its_own_kill(tmp_path):
    run = SoakRun(10, 8, Path("."), started_at=1000.0, ended_at=1400.0)
    run.injected = [Injected("agent_kill", 1020.0, 1060.0, ["agents-001"], ["b"]),
                    Injected("collapse", 1090.0, 1140.0, ["agents-001"], ["b"])]
    ledger = _ledger(tmp_path, ["ack\tb\tsoak:1:1\t1019.0\t", "ack\tb\tsoak:2:1\t1061.0\t",
                                "ack\tb\tsoak:2:6\t1086.0\t", "ack\tb\tsoak:3:1\t1141.0\t"])
    alerts = [{"alert_id": 1, "kind": "agent_down", "key": "agent_down:2", "agent": "b", "opened": 1034.0,
               "resolved": 1061.0, "details": {}},
              {"alert_id": 2, "kind": "agent_down", "key": "agent_down:2", "agent": "b", "opened": 1101.0,
               "resolved": 1141.0, "details": {}}]
    _, accuracy = fd.detection_and_accuracy(run, ledger, _stored({}, alerts), [])
    assert accuracy["false_alerts"] == [] and accuracy["resolutions_checked"] == 2
    assert accuracy["resolutions_wrong"] == [], accuracy["resolutions_wrong"]
