"""Batch submission (SharedState.submit_tasks, fleet.submit_tasks) as an agent meets it on its own
login: order kept, dedupe keys within and across calls, one rate draw for the new tasks, all or
nothing, the caps held by the server; and the internal claim and completion functions that
complete_and_claim calls once authenticated are out of an agent's reach."""

from __future__ import annotations

import threading

import pytest

from agents_pipeline.core.errors import RateLimitedError, ValidationError
from agents_pipeline_tests.coordination.conftest import Fleet


def _tokens(fleet: Fleet, name: str) -> float:
    return fleet.sql("""SELECT b.tokens FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                        WHERE a.name = %s AND b.kind = 'tasks'""", (name,))[0][0]


def test_a_batch_is_queued_in_order_and_claimed_like_single_submissions(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker", ("ocr",))
    ids = producer.submit_tasks("scan", [{"page": n} for n in range(25)], capability="ocr", priority=3, max_attempts=2)
    assert len(ids) == 25 and len(set(ids)) == 25
    stored = fleet.sql("""SELECT task_id, payload, capability, priority, max_attempts, state FROM fleet.tasks
                          ORDER BY task_id""")
    assert [(r[0], r[1]) for r in stored] == [(i, {"page": n}) for n, i in enumerate(ids)]
    assert {r[2:] for r in stored} == {("ocr", 3, 2, "ready")}
    assert _tokens(fleet, "producer") == pytest.approx(1000 - 25, abs=0.5)   # one draw of 25 tokens
    claimed = worker.claim_tasks(["ocr"], 10)
    assert [t.task_id for t in claimed] == ids[:10] and claimed[3].payload == {"page": 3}


def test_dedupe_keys_hold_within_a_batch_and_across_calls(fleet: Fleet) -> None:
    producer = fleet.agent("producer")
    fleet.sql("""INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)   -- no refill between calls
                 SELECT agent_id, 'tasks', 0.0001, 1000 FROM fleet.agents WHERE name = 'producer'""")
    first = producer.submit_tasks("mail", [{"to": "a"}, {"to": "b"}, {"to": "c"}], dedupe_keys=["a", None, "c"])
    again = producer.submit_tasks("mail", [{"to": "a"}, {"to": "d"}, {"to": "d2"}, {"to": "b"}],
                                  dedupe_keys=["a", "d", "d", None])
    assert again[0] == first[0]                       # the key from the first call
    assert again[2] == again[1] and again[1] not in first   # twice in one call: one task
    assert again[3] not in first                      # no key: always a new task
    assert fleet.sql("SELECT count(*) FROM fleet.tasks") == [(5,)]
    assert fleet.sql("SELECT payload FROM fleet.tasks WHERE task_id = %s", (again[1],)) == [({"to": "d"},)]
    assert _tokens(fleet, "producer") == pytest.approx(1000 - 5, abs=0.5)   # only new tasks draw
    assert producer.submit_tasks("mail", [{}], dedupe_keys=["c"]) == [first[2]]
    # Another submitter's keys are its own.
    assert fleet.agent("other").submit_tasks("mail", [{}], dedupe_keys=["a"]) != [first[0]]


def test_with_keys_too_ids_follow_the_payloads_so_claims_keep_their_order(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker", ("mail",))
    ids = producer.submit_tasks("mail", [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}], capability="mail",
                                dedupe_keys=["zulu", None, "alpha", "mike"])
    assert ids == sorted(ids)                          # drawn in the payloads' order, not the keys'
    assert [t.payload["n"] for t in worker.claim_tasks(["mail"], 10)] == [0, 1, 2, 3]


def test_two_sessions_racing_with_the_same_keys_get_one_task_per_key(fleet: Fleet) -> None:
    """Two connections of one producer submit the same keys in opposite orders at once: every key
    ends with one task, and both calls answer its id (the loser's ON CONFLICT waits for the winner)."""
    first, second = fleet.agent("producer"), fleet.agent("producer")
    rounds = 30
    answers: dict[str, list[list[int]]] = {"first": [], "second": []}

    def submit(state, name: str, reverse: bool) -> None:
        for i in range(rounds):
            keys = [f"k{i}-a", f"k{i}-b", f"k{i}-c"]
            keys = keys[::-1] if reverse else keys
            ids = state.submit_tasks("race", [{"key": k} for k in keys], dedupe_keys=keys)
            answers[name].append(ids[::-1] if reverse else ids)

    threads = [threading.Thread(target=submit, args=(first, "first", False)),
               threading.Thread(target=submit, args=(second, "second", True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers["first"] == answers["second"] and len(answers["first"]) == rounds
    assert fleet.sql("SELECT count(*), count(DISTINCT dedupe_key) FROM fleet.tasks") == [(3 * rounds, 3 * rounds)]
    stored = dict(fleet.sql("SELECT dedupe_key, task_id FROM fleet.tasks"))
    assert all(stored[f"k{i}-{c}"] == ids[n] for i, ids in enumerate(answers["first"]) for n, c in enumerate("abc"))


def test_a_refused_batch_queues_nothing(fleet: Fleet) -> None:
    producer = fleet.agent("producer")
    fleet.sql("""INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                 SELECT agent_id, 'tasks', 0.01, 5 FROM fleet.agents WHERE name = 'producer'""")
    producer.submit_tasks("x", [{}, {}, {}])
    with pytest.raises(RateLimitedError) as refused:
        producer.submit_tasks("x", [{}, {}, {}])
    assert 50 < refused.value.retry_after_s <= 100    # one token short at 0.01/s
    assert fleet.sql("SELECT count(*) FROM fleet.tasks") == [(3,)]
    producer.submit_tasks("x", [{}, {}])              # what is left still fits


BATCH_REFUSALS = [
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', array_fill('{}'::jsonb, ARRAY[1001]), NULL, 0, NULL, 5, NULL)",
     (), "submit_tasks takes 1 to 1000 payloads"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', '{}'::jsonb[], NULL, 0, NULL, 5, NULL)",
     (), "submit_tasks takes 1 to 1000 payloads"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', ARRAY['{}'::jsonb, '{}'], NULL, 0, NULL, 5, ARRAY['k'])",
     (), "2 payloads and 1 dedupe keys"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', ARRAY[%s::jsonb], NULL, 0, NULL, 5, NULL)",
     ('{"blob": "' + "a" * 262_200 + '"}',), "task payload larger than 256 KiB"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', array_fill(%s::jsonb, ARRAY[40]), NULL, 0, NULL, 5, NULL)",
     ('{"blob": "' + "a" * 250_000 + '"}',), "task payloads larger than 8 MiB in one call"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x y', ARRAY['{}'::jsonb], NULL, 0, NULL, 5, NULL)",
     (), "a task kind must be 1 to 200 letters"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', ARRAY['{}'::jsonb], NULL, 0, NULL, 5, ARRAY[E'k\\n'])",
     (), "a dedupe key must have 1 to 200 bytes"),
    ("SELECT * FROM fleet.submit_tasks('mallory', NULL, 'x', ARRAY['{}'::jsonb], NULL, 0, NULL, 500, NULL)",
     (), "a task takes 1 to 100 attempts"),
    ("SELECT * FROM fleet.claim_tasks_as(1, 'mallory', NULL, 1, interval '1 minute')", (),
     "permission denied for function claim_tasks_as"),
    ("SELECT * FROM fleet.complete_tasks_as(1, ARRAY[1::bigint], ARRAY[gen_random_uuid()], NULL)", (),
     "permission denied for function complete_tasks_as"),
]


def test_the_server_holds_the_batch_caps_and_the_internal_functions(fleet: Fleet) -> None:
    """As the agent's own login, around the client library."""
    wrong = fleet.refusals_missed("mallory", BATCH_REFUSALS)
    assert not wrong, "\n".join(wrong)
    assert fleet.sql("SELECT count(*) FROM fleet.tasks") == [(0,)]


def test_the_client_refuses_a_bad_batch_before_sending(fleet: Fleet) -> None:
    agent = fleet.agent("careful")
    for call, match in [
        (lambda: agent.submit_tasks("x", []), "1 to 1000 payloads"),
        (lambda: agent.submit_tasks("x", [{}] * 1001), "1 to 1000 payloads"),
        (lambda: agent.submit_tasks("x", [{}, {}], dedupe_keys=["a"]), "2 payloads and 1 dedupe keys"),
        (lambda: agent.submit_tasks("x", [{"blob": "a" * 262_200}]), "larger than the 262144 byte limit"),
        (lambda: agent.submit_tasks("x", [{"b": "a" * 250_000}] * 40), "larger than 8 MiB"),
        (lambda: agent.submit_tasks("bad kind", [{}]), "task kind must be"),
        (lambda: agent.submit_tasks("x", [{}], dedupe_keys=["k" * 201]), "dedupe key"),
    ]:
        with pytest.raises(ValidationError, match=match):
            call()
