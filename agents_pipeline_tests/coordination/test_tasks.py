"""The task queue's rules, each as an agent meets it through SharedState on its own login:
dedupe, order and capabilities, attempt-id fencing, backoff and dead letters with their alert,
leases renewed by heartbeats, rate limits and caps, and what one agent cannot do to another's
task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import AuthError, LeaseLostError, RateLimitedError, ValidationError
from agents_pipeline.core.registry import token_proof
from agents_pipeline.core.tasks import Task
from agents_pipeline_tests.coordination.conftest import Fleet


def _row(fleet: Fleet, task_id: int, columns: str = "state, attempts, claimed_by") -> tuple:
    return fleet.sql(f"SELECT {columns} FROM fleet.tasks WHERE task_id = %s", (task_id,))[0]  # noqa: S608 - test constants


def test_a_dedupe_key_makes_submission_idempotent_per_submitter(fleet: Fleet) -> None:
    alice, bob = fleet.agent("alice"), fleet.agent("bob")
    first = alice.submit_task("invoice", {"n": 42}, dedupe_key="invoice-42")
    assert alice.submit_task("invoice", {"n": 42}, dedupe_key="invoice-42") == first
    # Another submitter's key is its own: bob cannot squat alice's key, nor read her task back.
    theirs = bob.submit_task("invoice", {"n": 42}, dedupe_key="invoice-42")
    assert theirs != first
    assert fleet.sql("SELECT count(*) FROM fleet.tasks") == [(2,)]
    # A retried submission draws nothing from the rate bucket: one token per task stored.
    tokens = fleet.sql("""SELECT b.tokens FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                          WHERE a.name = 'alice' AND b.kind = 'tasks'""")[0][0]
    assert tokens == pytest.approx(999, abs=0.5)


def test_claims_go_by_priority_then_age_and_only_to_granted_capabilities(fleet: Fleet) -> None:
    producer = fleet.agent("producer")
    writer = fleet.agent("writer", ("summarise",))
    generalist = fleet.agent("generalist")
    low = producer.submit_task("summarise", capability="summarise", priority=-5)
    old = producer.submit_task("summarise", capability="summarise")
    new = producer.submit_task("summarise", capability="summarise")
    urgent = producer.submit_task("summarise", capability="summarise", priority=10)
    anyone = producer.submit_task("cleanup")
    later = producer.submit_task("summarise", capability="summarise",
                                 run_after=datetime.now(UTC) + timedelta(hours=1))

    assert [t.task_id for t in generalist.claim_tasks(None, 10)] == [anyone]   # no capability: only these
    with pytest.raises(AuthError, match="no capability 'summarise'"):
        generalist.claim_tasks(["summarise"], 1)
    claimed = writer.claim_tasks(["summarise"], 10, lease_s=30)
    assert [t.task_id for t in claimed] == [urgent, old, new, low]
    assert later not in [t.task_id for t in claimed]
    first = claimed[0]
    assert (first.kind, first.capability, first.priority, first.attempt, first.max_attempts, first.submitted_by) == (
        "summarise", "summarise", 10, 1, 5, "producer")
    assert timedelta(seconds=28) < first.lease_until - datetime.now(UTC) <= timedelta(seconds=30)
    assert writer.claim_tasks(["summarise"], 10) == []


def test_an_attempt_that_lost_its_task_cannot_complete_fail_or_extend_it(fleet: Fleet) -> None:
    """Guards exactly-once completion: attempt 1's lease ran out, attempt 2 took the task; attempt
    1 (a stalled worker waking up) is refused everything, attempt 2's result is the one kept."""
    producer, slow, fast = fleet.agent("producer"), fleet.agent("slow"), fleet.agent("fast")
    task_id = producer.submit_task("render", {"page": 1})
    (first,) = slow.claim_tasks(None, 1, lease_s=60)
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() - interval '1 second' WHERE task_id = %s", (task_id,))
    (second,) = fast.claim_tasks(None, 1, lease_s=60)      # releases the expired lease, then claims
    assert (second.task_id, second.attempt) == (task_id, 2)
    assert second.attempt_id != first.attempt_id
    with pytest.raises(LeaseLostError, match=f"task {task_id} "):
        slow.complete(first, {"by": "slow"})
    with pytest.raises(LeaseLostError):
        slow.fail(first, "late failure")
    with pytest.raises(LeaseLostError):
        slow.extend(first)
    fast.complete(second, {"by": "fast"})
    fast.complete(second, {"by": "fast"})                  # the same attempt again: harmless
    with pytest.raises(LeaseLostError):
        fast.fail(second, "after completing")
    assert _row(fleet, task_id, "state, attempts, result, last_error") == (
        "done", 2, {"by": "fast"}, "released: its lease ran out (held by slow)")


def test_complete_many_completes_in_one_transaction_and_returns_the_attempts_that_lost(fleet: Fleet) -> None:
    producer, slow, fast = fleet.agent("producer"), fleet.agent("slow"), fleet.agent("fast")
    ids = [producer.submit_task("render", {"page": i}) for i in range(3)]
    held = slow.claim_tasks(None, 3, lease_s=60)
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() - interval '1 second' WHERE task_id = %s", (ids[0],))
    (taken,) = fast.claim_tasks(None, 1, lease_s=60)          # attempt 2 of the first task
    lost = slow.complete_many([(t, {"by": "slow", "page": t.payload["page"]}) for t in held])
    assert [t.task_id for t in lost] == [ids[0]]
    assert [_row(fleet, i, "state, result") for i in ids[1:]] == [
        ("done", {"by": "slow", "page": 1}), ("done", {"by": "slow", "page": 2})]
    assert _row(fleet, ids[0], "state") == ("claimed",) and fast.complete_many([(taken, None)]) == []
    assert slow.complete_many([]) == []


def test_an_expired_lease_nobody_took_may_still_complete(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker")
    task_id = producer.submit_task("render")
    (task,) = worker.claim_tasks(None, 1, lease_s=60)
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() - interval '1 second' WHERE task_id = %s", (task_id,))
    worker.complete(task, {"ok": True})
    assert _row(fleet, task_id, "state, result") == ("done", {"ok": True})


def test_failures_back_off_then_dead_letter_with_an_alert_the_health_evaluation_sends(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker")
    task_id = producer.submit_task("flaky", max_attempts=3)

    def claim_now() -> Task:
        fleet.sql("UPDATE fleet.tasks SET run_after = now() WHERE task_id = %s", (task_id,))
        (task,) = worker.claim_tasks(None, 1)
        return task

    for attempt, base_s in ((1, 5), (2, 10)):
        task = claim_now()
        assert task.attempt == attempt
        assert worker.fail(task, RuntimeError("upstream 503")) == "ready"
        delay, error = fleet.sql("""SELECT extract(epoch FROM run_after - failed_at), last_error
                                    FROM fleet.tasks WHERE task_id = %s""", (task_id,))[0]
        assert base_s <= float(delay) <= base_s * 1.25, (attempt, delay)   # doubled, with jitter
        assert error == "RuntimeError: upstream 503"
        assert worker.claim_tasks(None, 1) == []                            # backing off
    assert worker.fail(claim_now(), "still 503") == "dead"
    assert _row(fleet, task_id, "state, attempts, finished_at IS NOT NULL") == ("dead", 3, True)
    alerts = fleet.sql("SELECT alert_key, kind, severity, subject FROM fleet.alerts WHERE resolved_at IS NULL")
    assert alerts == [("task_dead:flaky", "task_dead", "warning", "tasks of kind flaky were dead-lettered")]
    fleet.sql("SELECT count(*) FROM fleet.evaluate_health(now(), ARRAY['log'])")
    assert fleet.sql("""SELECT n.event, n.channel FROM fleet.notifications n JOIN fleet.alerts a USING (alert_id)
                        WHERE a.kind = 'task_dead'""") == [("opened", "log")]
    # No dead letter of the kind left: the check resolves the alert.
    fleet.sql("UPDATE fleet.tasks SET state = 'ready', attempts = 0 WHERE task_id = %s", (task_id,))
    assert fleet.sql("SELECT fleet.check_task_alerts(now(), ARRAY['log'])") == [(1,)]
    assert fleet.sql("SELECT count(*) FROM fleet.alerts WHERE resolved_at IS NULL") == [(0,)]


def test_explicit_retry_and_permanent_failure(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker")
    task_id = producer.submit_task("parse")
    assert worker.fail(worker.claim_tasks(None, 1)[0], "try again now", retry_in=0) == "ready"
    (task,) = worker.claim_tasks(None, 1)
    assert task.attempt == 2
    assert worker.fail(task, "the input is not a PDF", permanent=True) == "failed"
    assert _row(fleet, task_id, "state, last_error") == ("failed", "the input is not a PDF")
    assert fleet.sql("SELECT count(*) FROM fleet.alerts") == [(0,)]
    with pytest.raises(ValidationError, match="retry_in"):
        worker.fail("worker", "a heartbeat failure takes no retry", retry_in=5)


def test_heartbeats_renew_the_leases_their_agent_holds(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker")
    held, other = producer.submit_task("long"), producer.submit_task("long")
    (task,) = worker.claim_tasks(None, 1, lease_s=120)

    def left_s() -> float:
        return float(_row(fleet, held, "extract(epoch FROM lease_until - now())")[0])

    fleet.sql("UPDATE fleet.tasks SET lease_until = now() + interval '70 seconds', renew_at = now() + interval '10 seconds' "
              "WHERE task_id = %s", (held,))
    worker.heartbeat()
    assert 60 < left_s() < 70            # more than half a lease left: no write
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() + interval '5 seconds', renew_at = now() - interval '55 seconds' "
              "WHERE task_id = %s", (held,))
    worker.heartbeat(kind="log", message="a log line is no sign of life")
    assert left_s() < 6
    worker.heartbeat()
    assert left_s() > 110
    assert _row(fleet, other, "state, lease_until") == ("ready", None)
    assert task.task_id == held
    assert worker.extend(task, lease_s=600) > datetime.now(UTC) + timedelta(seconds=590)


def test_rate_limits_refuse_submissions_claims_and_extensions(fleet: Fleet) -> None:
    producer = fleet.agent("producer")
    fleet.sql("""INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                 SELECT agent_id, 'tasks', 0.01, 2 FROM fleet.agents WHERE name = 'producer'""")
    first = producer.submit_task("x")
    producer.submit_task("x")
    with pytest.raises(RateLimitedError) as refused:
        producer.submit_task("x")
    assert 50 < refused.value.retry_after_s <= 100
    with pytest.raises(RateLimitedError):
        producer.claim_tasks(None, 1)
    assert fleet.sql("""SELECT b.refused_total FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                        WHERE a.name = 'producer' AND b.kind = 'tasks'""") == [(2,)]
    assert fleet.sql("SELECT min(task_id), count(*) FROM fleet.tasks") == [(first, 2)]   # nothing else stored


SERVER_REFUSALS = [
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', %s::jsonb, NULL, 0, NULL, 5, NULL)",
     ('{"blob": "' + "a" * 262_200 + '"}',), "task payload larger than 256 KiB"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x; DROP TABLE', '{}', NULL, 0, NULL, 5, NULL)", (),
     "a task kind must be 1 to 200 letters"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', '{}', 'bad cap', 0, NULL, 5, NULL)", (),
     "a capability must be 1 to 200 letters"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', '{}', NULL, 5000, NULL, 5, NULL)", (),
     "a task priority must be -1000 to 1000"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', '{}', NULL, 0, NULL, 1000, NULL)", (),
     "a task takes 1 to 100 attempts"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', '{}', NULL, 0, now() + interval '2 years', 5, NULL)", (),
     "at most 365 days ahead"),
    ("SELECT * FROM fleet.submit_task('mallory', NULL, 'x', '{}', NULL, 0, NULL, 5, E'k\\n')", (),
     "a dedupe key must have 1 to 200 bytes"),
    ("SELECT * FROM fleet.claim_tasks('mallory', NULL, NULL, 5000, interval '1 minute')", (),
     "a claim takes 1 to 1000 tasks"),
    ("SELECT * FROM fleet.claim_tasks('mallory', NULL, NULL, 1, interval '2 hours')", (),
     "a lease must be longer than 0 and at most 1 hour"),
    ("SELECT * FROM fleet.claim_tasks('mallory', NULL, array_fill('x'::text, ARRAY[101]), 1, interval '1 minute')", (),
     "at most 100 capabilities"),
    ("SELECT fleet.complete_task('mallory', NULL, 1, gen_random_uuid(), %s::jsonb)",
     ('"' + "r" * 262_200 + '"',), "task result larger than 256 KiB"),
    ("SELECT fleet.fail_task('mallory', NULL, 1, gen_random_uuid(), repeat('e', 9000), NULL, false)", (),
     "task error larger than 8192 bytes"),
    ("SELECT fleet.fail_task('mallory', NULL, 1, gen_random_uuid(), 'e', interval '30 days', false)", (),
     "a retry must come 0 s to 7 days later"),
    ("SELECT * FROM fleet.tasks", (), "permission denied for table tasks"),
    ("UPDATE fleet.agents SET capabilities = '{x}' WHERE name = 'mallory'", (), "permission denied for table agents"),
    ("SELECT fleet.release_tasks(ARRAY[1::bigint], ARRAY[gen_random_uuid()], 'x')", (),
     "permission denied for function release_tasks"),
]


def test_each_cap_is_refused_by_the_server_with_a_clear_error(fleet: Fleet) -> None:
    """As the agent's own login (its proof in the startup packet), around the client library: the
    server holds every cap, names it, and stores nothing."""
    wrong = fleet.refusals_missed("mallory", SERVER_REFUSALS)
    assert not wrong, "\n".join(wrong)
    assert fleet.sql("SELECT count(*) FROM fleet.tasks") == [(0,)]


def test_the_client_refuses_the_same_before_sending(fleet: Fleet) -> None:
    agent = fleet.agent("careful")
    for call, match in [
        (lambda: agent.submit_task("x", {"blob": "a" * 262_200}), "larger than the 262144 byte limit"),
        (lambda: agent.submit_task("bad kind"), "task kind must be"),
        (lambda: agent.submit_task("x", priority=1.5), "priority must be a whole number"),
        (lambda: agent.submit_task("x", dedupe_key="k" * 201), "dedupe key"),
        (lambda: agent.submit_task("x", run_after=datetime(2030, 1, 1)), "time zone"),
        (lambda: agent.claim_tasks(None, 0), "1 to 1000 tasks"),
        (lambda: agent.claim_tasks(None, 1, lease_s=7200), "lease_s must be"),
        (lambda: agent.claim_tasks(["ok", "not ok"], 1), "capability must be"),
    ]:
        with pytest.raises(ValidationError, match=match):
            call()


def test_an_agent_can_neither_complete_nor_read_another_agents_task(fleet: Fleet) -> None:
    producer, holder, thief = fleet.agent("producer"), fleet.agent("holder"), fleet.agent("thief")
    task_id = producer.submit_task("secret-work", {"k": 1})
    (task,) = holder.claim_tasks(None, 1)
    forged = Task(**{**task.__dict__, "agent": "thief"})        # the holder's attempt id, the thief's name
    with pytest.raises(LeaseLostError):
        thief.complete(forged, {"stolen": True})
    with pytest.raises(LeaseLostError):
        thief.fail(forged, "sabotage", retry_in=0)
    with pytest.raises(LeaseLostError):
        thief.extend(forged)
    with pytest.raises(AuthError, match="token refused for agent 'holder'"):
        thief.complete(task, {"stolen": True})                  # acting as the holder needs its token
    assert thief.get_task(task_id) is None                      # as for a task that does not exist
    assert thief.get_task(10**9) is None
    seen_by_producer = producer.get_task(task_id)
    assert (seen_by_producer.state, seen_by_producer.claimed_by, seen_by_producer.attempts) == ("claimed", "holder", 1)
    holder.complete(task, {"answer": 42})
    assert producer.get_task(task_id).result == {"answer": 42}
    assert holder.get_task(task_id).state == "done"
    # The thief's own proof cannot name the holder either, not even on the raw function.
    url, token = fleet.logins["thief"]
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error, match="token refused for agent 'holder'"):
            cur.execute("SELECT * FROM fleet.get_task('holder', %s, %s)", (token_proof(token), task_id))
    finally:
        conn.close()


def test_an_operator_grants_and_clears_capabilities_from_the_command_line(fleet: Fleet, db_env: str, capsys) -> None:
    from agents_pipeline.cli.main import main

    worker = fleet.agent("worker")
    assert main(["agents", "capabilities", "worker", "summarise", "render", "summarise"]) == 0
    assert capsys.readouterr().out.strip() == "worker: may claim tasks needing render, summarise"
    assert worker.claim_tasks(["render"], 1) == []
    assert main(["agents", "capabilities", "worker"]) == 0
    assert "render, summarise" in capsys.readouterr().out
    assert main(["agents", "capabilities", "worker", "bad cap"]) == 2
    assert "capability must be 1 to 200 letters" in capsys.readouterr().err
    assert main(["agents", "capabilities", "worker", "--clear"]) == 0
    assert capsys.readouterr().out.strip() == "worker: may claim tasks needing no capability"
    with pytest.raises(AuthError):
        worker.claim_tasks(["render"], 1)
    assert main(["agents", "capabilities", "nobody", "x"]) == 2
    assert "unknown agent 'nobody'" in capsys.readouterr().err


def test_complete_tasks_checks_its_arrays_and_caps_on_the_server(fleet: Fleet) -> None:
    """fleet.complete_tasks as an agent's own login would call it around SharedState: arrays that
    do not pair up, more than 1,000 tasks, a result over 256 KiB and 8 MiB in one call are refused
    by name; another agent's attempt is reported lost and left as it was."""
    producer, worker, other = fleet.agent("producer"), fleet.agent("worker"), fleet.agent("other")
    ids = [producer.submit_task("render", {"page": i}) for i in range(2)]
    mine = worker.claim_tasks(None, 1, lease_s=60)[0]
    theirs = other.claim_tasks(None, 1, lease_s=60)[0]
    url, token = fleet.logins["worker"]

    def call(task_ids, attempts, results):
        with psycopg2.connect(**{**connect_kwargs(url), "password": token}) as conn, conn.cursor() as cur:
            cur.execute("SET agents_pipeline.proof = %s", (token_proof(token).hex(),))
            cur.execute("SELECT fleet.complete_tasks('worker', NULL, %s::bigint[], %s::uuid[], %s::jsonb[])",
                        (task_ids, attempts, results))
            return sorted(r[0] for r in cur.fetchall())

    with pytest.raises(psycopg2.Error, match="must pair up"):
        call([mine.task_id], [], None)
    with pytest.raises(psycopg2.Error, match="at most 1000 tasks"):
        call(list(range(1001)), [mine.attempt_id] * 1001, None)
    with pytest.raises(psycopg2.Error, match="larger than 256 KiB"):
        call([mine.task_id], [mine.attempt_id], ['{"x": "%s"}' % ("a" * 270_000)])
    with pytest.raises(psycopg2.Error, match="larger than 8 MiB"):
        call([mine.task_id] * 40, [mine.attempt_id] * 40, ['{"x": "%s"}' % ("a" * 250_000)] * 40)
    assert call([mine.task_id, theirs.task_id], [mine.attempt_id, theirs.attempt_id], None) == [theirs.task_id]
    assert {_row(fleet, i, "state")[0] for i in ids} == {"done", "claimed"}
    assert _row(fleet, theirs.task_id, "state, claimed_by")[0] == "claimed"
    assert call([mine.task_id], [mine.attempt_id], None) == []    # a retried call: done already, not lost


def test_complete_and_claim_is_one_step_of_a_workers_loop(fleet: Fleet) -> None:
    """Completes the batch it presents and claims the next in one statement: results stored, a
    lost attempt reported, the next tasks claimed with new attempt ids; an empty queue answers
    with no tasks, and the last completions are stored all the same."""
    producer, worker, other = fleet.agent("producer"), fleet.agent("worker"), fleet.agent("other")
    ids = [producer.submit_task("render", {"page": i}) for i in range(5)]
    first = worker.claim_tasks(None, 2, lease_s=60)
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() - interval '1 second' WHERE task_id = %s", (ids[0],))
    (stolen,) = other.claim_tasks(None, 1, lease_s=60)
    assert stolen.task_id == ids[0]
    lost, nxt = worker.complete_and_claim([(t, {"page": t.payload["page"]}) for t in first], None, 2, 60)
    assert [t.task_id for t in lost] == [ids[0]]
    assert [t.task_id for t in nxt] == ids[2:4] and all(t.attempt_id for t in nxt)
    assert _row(fleet, ids[1], "state, result") == ("done", {"page": 1})
    lost, nxt = worker.complete_and_claim([(t, None) for t in nxt], None, 5, 60)
    assert lost == [] and [t.task_id for t in nxt] == [ids[4]]
    lost, nxt = worker.complete_and_claim([(t, None) for t in nxt], None, 5, 60)
    assert (lost, nxt) == ([], [])
    assert [_row(fleet, i, "state")[0] for i in ids] == ["claimed", "done", "done", "done", "done"]
    with pytest.raises(ValidationError, match="own attempts only"):
        worker.complete_and_claim([(stolen, None)], None, 1, 60)
