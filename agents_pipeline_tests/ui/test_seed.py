"""The demo history seeder: backdated rows in the right partitions, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents_pipeline.core.errors import ValidationError
from agents_pipeline.demo.profiles import fleet
from agents_pipeline.demo.seed import MARKER_KEY, SeedPlan, seed_history

NOW = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
PLAN = SeedPlan(agents=3, days=3, heartbeat_every_s=600, sample_every_s=1800, conversation_every_s=3600, host="h1")


def _q(database, sql, params=()):
    def work(cur):
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]

    return database.transaction(work)


def test_seed_writes_backdated_history_across_days(database):
    counts = seed_history(database, PLAN, now=NOW)
    names = [n for n, _ in fleet(3)]
    # 3 days at one heartbeat per 10 minutes = 432 slots per agent, minus outage minutes.
    slots = 3 * 24 * 6
    assert 0.9 * 3 * slots <= counts["heartbeats"] < 3 * slots
    per_day = _q(database, """SELECT (received_at AT TIME ZONE 'UTC')::date AS d, count(DISTINCT a.name)
                              FROM fleet.heartbeats h JOIN fleet.agents a USING (agent_id) GROUP BY 1 ORDER BY 1""")
    days = [row[0] for row in per_day]
    assert days[0] == (NOW - timedelta(days=3)).date() and days[-1] == NOW.date()
    assert all(row[1] == 3 for row in per_day)
    # The oldest rows sit in the partition of their UTC day (the server runs in Pacific/Chatham).
    oldest = _q(database, "SELECT tableoid::regclass::text, min(received_at) FROM fleet.heartbeats "
                          "GROUP BY 1 ORDER BY 2 LIMIT 1")[0]
    assert oldest[0] == "fleet.heartbeats_p" + (NOW - timedelta(days=3)).strftime("%Y%m%d")
    assert oldest[1] == NOW.replace(second=0) - timedelta(days=3)
    assert _q(database, "SELECT max(received_at) FROM fleet.heartbeats")[0][0] < NOW.replace(second=0)
    # Every outage is a down/up pair of status changes and one resolved alert spanning it.
    assert counts["status_changes"] == 2 * counts["alerts"] > 0
    spans = _q(database, """SELECT count(*) FILTER (WHERE resolved_at > opened_at), count(*) FILTER (WHERE resolved_at IS NULL)
                            FROM fleet.alerts""")[0]
    assert spans == (counts["alerts"], 0)
    # Samples for each agent's four metrics and the host's three; conversations on every day.
    metrics = dict(_q(database, "SELECT agent_id IS NULL, count(DISTINCT metric) FROM fleet.perf_samples GROUP BY 1"))
    assert metrics == {False: 4, True: 3}
    conv_days = _q(database, "SELECT count(DISTINCT (created_at AT TIME ZONE 'UTC')::date), "
                             "count(*) FILTER (WHERE langsmith_sent_at IS NULL), sum(total_tokens) > 0 "
                             "FROM fleet.llm_conversations")[0]
    assert conv_days == (4, 0, True)
    assert counts["help_requests"] == 3
    agents = _q(database, "SELECT name, status, last_seen, heartbeat_count FROM fleet.agents ORDER BY name")
    assert sorted(a[0] for a in agents) == sorted(names)
    assert all(a[1] == "up" and a[2] is not None and a[3] > 0 for a in agents)


def test_seed_twice_duplicates_nothing_and_later_run_fills_the_gap(database):
    """Regression: re-running `make demo` must not double the history."""
    first = seed_history(database, PLAN, now=NOW)
    total = _q(database, "SELECT (SELECT count(*) FROM fleet.heartbeats), (SELECT count(*) FROM fleet.perf_samples), "
                         "(SELECT count(*) FROM fleet.llm_conversations), (SELECT count(*) FROM fleet.alerts)")[0]
    again = seed_history(database, PLAN, now=NOW)
    assert set(again.values()) == {0}
    assert _q(database, "SELECT (SELECT count(*) FROM fleet.heartbeats), (SELECT count(*) FROM fleet.perf_samples), "
                        "(SELECT count(*) FROM fleet.llm_conversations), (SELECT count(*) FROM fleet.alerts)")[0] == total
    later = seed_history(database, PLAN, now=NOW + timedelta(hours=2))
    assert 0 < later["heartbeats"] <= 3 * 12 and later["help_requests"] == 0
    assert first["heartbeats"] + later["heartbeats"] == _q(database, "SELECT count(*) FROM fleet.heartbeats")[0][0]
    marker = _q(database, "SELECT value #>> '{}' FROM fleet.system_config WHERE key = %s", (MARKER_KEY,))[0][0]
    assert datetime.fromisoformat(marker) == NOW.replace(second=0) + timedelta(hours=2)


def test_seed_refuses_a_bad_plan_and_stores_nothing(database):
    with pytest.raises(ValidationError, match="heartbeat_every_s must be at least 10"):
        seed_history(database, SeedPlan(heartbeat_every_s=1), now=NOW)
    with pytest.raises(ValidationError, match="days must be between 1 and 400"):
        seed_history(database, SeedPlan(days=0), now=NOW)
    assert _q(database, "SELECT count(*) FROM fleet.agents")[0][0] == 0
