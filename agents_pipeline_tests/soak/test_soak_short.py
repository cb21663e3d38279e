"""The 2-minute soak, the same harness as `make soak`, run as a user runs it (make test-slow).

It asserts the goals that two minutes can show: no acknowledged heartbeat lost, every injected
death alerted through the webhook within 30 s, no false alerts, downtimes right, every fault
injected and restored, and a report with its plots. Flat memory needs the long run (warm-up
growth dominates two minutes), so it is reported here, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from agents_pipeline.soak import report

pytestmark = pytest.mark.slow


def test_two_minute_soak(tmp_path: Path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", "soak", "--minutes", "2",
                           "--agents", "20", "--out", str(out), "--json", "--no-record"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    kinds = sorted(f["kind"] for f in found["faults"])
    assert kinds == ["agent_kill", "burst", "code_server_kill", "daemon_kill", "postgres_restart"]
    assert all(f["restored_s"] is not None for f in found["faults"] if f["kind"] != "burst")
    assert found["harness_errors"] == []
    delivery = found["delivery"]
    assert delivery["lost"] == 0 and delivery["duplicates"] == 0
    assert delivery["acknowledged"] > 20 * 100 / 5 * 0.8     # most of 20 agents x 2 min / 5 s went through
    detection = found["detection"]
    assert (detection["deaths"], detection["alerted"], detection["missed"]) == (4, 4, [])
    assert detection["latency_p95_s"] <= 30.0
    assert found["accuracy"]["false_alerts"] == []
    assert found["accuracy"]["resolutions_checked"] == 4 and found["accuracy"]["resolutions_wrong"] == []
    verdict = {k: v for k, v in found["verdict"].items() if not k.startswith("memory flat")}
    assert all(verdict.values()), verdict
    assert proc.returncode == (0 if all(found["verdict"].values()) else 1)
    text = (out / "REPORT.md").read_text()
    assert "## 1. Delivery" in text and "## 5. Storage" in text and "| no acknowledged heartbeat lost | yes |" in text
    for name in ("heartbeats.png", "cpu.png", "memory.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    # What the UI shows of it: the materialization `agents-pipeline soak` records.
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(report.materialization(found, out / "REPORT.md", text))
        event = instance.get_latest_materialization_event(dg.AssetKey("soak_report"))
        meta = event.asset_materialization.metadata
        assert meta["lost"].value == 0 and meta["deaths"].value == 4 and meta["report"].value == str(out / "REPORT.md")
