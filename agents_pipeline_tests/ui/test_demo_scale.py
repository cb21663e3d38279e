"""The demo at scale (issue #21): the history fill that gives every plot its past, and the swarm
that runs many simulated agents in one process."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

from agents_pipeline.demo.history import fill_history
from agents_pipeline.demo.seed import SeedPlan, seed_history
from agents_pipeline.demo.swarm import Swarm


class _Reports(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_history_fill_rolls_up_every_seeded_hour_and_reports_each_partition(database, db_url, engine):
    """Regression: after `make demo` the rollup plots showed one point although 40 days were seeded."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    seed_history(database, SeedPlan(agents=2, days=2, heartbeat_every_s=600, sample_every_s=1200,
                                    conversation_every_s=3600, host="h1"), now=now)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Reports)
    _Reports.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        filled = fill_history(db_url, f"http://127.0.0.1:{server.server_port}", days=2, now=now)
    finally:
        server.shutdown()
    first = now.replace(minute=0) - timedelta(hours=1, days=2)
    expected_days = (now.date() - first.date()).days + 1
    assert filled.hours_rolled >= 47 and filled.days_refreshed == expected_days
    rollups = [b for p, b in _Reports.received if p == "/report_asset_materialization/performance_rollups"]
    usage = [b for p, b in _Reports.received if p == "/report_asset_materialization/llm_usage_daily"]
    assert len(rollups) == filled.hours_rolled and len(usage) == expected_days == filled.reported - filled.hours_rolled
    last = (now.replace(minute=0) - timedelta(hours=1)).strftime("%Y-%m-%d-%H:%M")
    assert last in {b["partition"] for b in rollups}
    assert all(isinstance(v, (int, float, str)) for b in rollups for v in b["metadata"].values())
    assert {"agents", "agents_p95_cpu_percent_max", "raw_samples"} <= set(rollups[-1]["metadata"])
    with engine.begin() as conn:
        hours = conn.execute(sa.text("SELECT count(DISTINCT hour) FROM fleet.perf_rollups")).scalar_one()
        days = conn.execute(sa.text("SELECT count(DISTINCT day) FROM fleet.llm_usage_daily")).scalar_one()
        talked = conn.execute(sa.text("SELECT count(DISTINCT (created_at AT TIME ZONE 'UTC')::date) "
                                      "FROM fleet.llm_conversations")).scalar_one()
    assert hours == filled.hours_rolled and days == talked >= 2


def test_swarm_runs_many_agents_in_one_process(db_url, engine):
    swarm = Swarm(db_url, 40, skip=6, period_s=30.0, grace_s=15.0, seed=7)
    try:
        assert len(swarm.agents) == 34
        later = time.monotonic() + 31          # every agent is due once within a period
        sent = swarm.tick(later)
        assert sent == 34
        assert swarm.tick(later + 1) == 0      # nobody is due again within the period
    finally:
        swarm.state.close()
    with engine.begin() as conn:
        beats = conn.execute(sa.text("SELECT count(DISTINCT agent_id) FROM fleet.heartbeats")).scalar_one()
        talks = conn.execute(sa.text("SELECT count(DISTINCT agent_id) FROM fleet.llm_conversations")).scalar_one()
        metrics = conn.execute(sa.text("SELECT count(DISTINCT agent_id) FROM fleet.perf_samples "
                                       "WHERE metric = 'cpu_percent'")).scalar_one()
        names = conn.execute(sa.text("SELECT min(name), count(*) FROM fleet.agents")).one()
    assert beats == talks == metrics == 34
    assert names[1] == 34 and names[0].startswith("demo-")
