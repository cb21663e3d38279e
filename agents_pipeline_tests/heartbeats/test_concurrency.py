"""Two evaluators at once never record a transition twice, and never deadlock with heartbeats."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline_tests.heartbeats.helpers import add_agent, beat, s


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_overlapping_evaluator_skips_rows_the_other_holds(engine, t0):
    """Regression: a second evaluator inside the first one's transaction must neither wait nor
    record the same transitions again (SKIP LOCKED, then UPDATE ... WHERE status = old)."""
    for i in range(20):
        add_agent(engine, f"o{i}", period_s=10, grace_s=5, created_at=t0)
        beat(engine, f"o{i}", t0 + s(1))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(2), channels=["log"])
    with engine.connect() as first, engine.connect() as second:
        tx = first.begin()
        got_first = evaluate(first, now=t0 + s(3), channels=["log"], min_fleet=1000)
        got_first = evaluate(first, now=t0 + s(20), channels=["log"], min_fleet=1000)
        assert len(got_first) == 20
        with second.begin():
            second.execute(sa.text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail loudly
            assert evaluate(second, now=t0 + s(20), channels=["log"], min_fleet=1000) == []
        tx.commit()
        with second.begin():
            assert evaluate(second, now=t0 + s(21), channels=["log"], min_fleet=1000) == []
    assert _count(engine, "SELECT count(*) FROM fleet.status_changes WHERE to_status = 'down'") == 20
    assert _count(engine, "SELECT count(*) FROM fleet.alerts") == 20
    assert _count(engine, "SELECT count(*) FROM fleet.notifications") == 20


def test_racing_evaluator_threads_and_heartbeats_record_each_transition_once(engine, t0):
    names = [f"race{i}" for i in range(150)]
    for name in names:
        add_agent(engine, name, period_s=10, grace_s=5, created_at=t0)
        beat(engine, name, t0 + s(1))
    rounds = [t0 + s(x) for x in (2, 12, 17, 18, 30)]                          # up, late, down, -, -
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def evaluator() -> None:
        try:
            for now in rounds:
                barrier.wait(timeout=30)
                with engine.begin() as conn:
                    evaluate(conn, now=now, channels=["log", "webhook"], min_fleet=10**6)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def heartbeater() -> None:
        # Batches of every agent in reverse order, as a hostile writer would send them.
        try:
            for _ in rounds:
                barrier.wait(timeout=30)
                with engine.begin() as conn:
                    conn.execute(sa.text("""SELECT count(*) FROM fleet.record_heartbeats(
                        CAST(:n AS text[]), NULL, ARRAY(SELECT 'log' FROM unnest(CAST(:n AS text[]))),
                        NULL, NULL, NULL)"""), {"n": names[::-1]})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=evaluator), threading.Thread(target=evaluator),
               threading.Thread(target=heartbeater)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # A row held through every racing round is judged by the next evaluation that finds it free.
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(31), channels=["log", "webhook"], min_fleet=10**6)
    per_agent = _count(engine, """SELECT max(n) FROM (SELECT count(*) AS n FROM fleet.status_changes
                                  GROUP BY agent_id, to_status) x""")
    assert per_agent == 1
    # A row a heartbeat batch held was skipped and judged next round (up -> down, no late), so
    # check that each agent's changes form one unbroken chain from new to down.
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT agent_id, from_status, to_status FROM fleet.status_changes "
                                    "ORDER BY agent_id, change_id")).all()
    chains: dict[int, list[tuple[str, str]]] = {}
    for row in rows:
        chains.setdefault(row.agent_id, []).append((row.from_status, row.to_status))
    assert len(chains) == len(names)
    for chain in chains.values():
        assert chain[0][0] == "new" and chain[-1][1] == "down"
        assert all(a[1] == b[0] for a, b in zip(chain, chain[1:], strict=False))
    assert _count(engine, "SELECT count(*) FROM fleet.alerts") == len(names)
    assert _count(engine, "SELECT count(*) FROM fleet.notifications") == 2 * len(names)
    assert _count(engine, "SELECT count(*) FROM fleet.agents WHERE status = 'down'") == len(names)
