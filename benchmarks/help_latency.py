"""Answer latency of the help without an LLM, with 10,000 passages indexed.

Starts a throwaway PostgreSQL (the test harness's, so the server is real and local), loads the
project's docs plus generated documents up to --passages through the real loader, seeds a
fleet (agents with status changes, alerts, hourly rollups, LLM errors), then times complete
``ask`` calls in-process: store the request, retrieve, read live facts, compose, store the
answer and log the conversation. Also reports retrieval quality on the fixed question set with
the generated passages as distractors, and the wall time of the `agents-pipeline ask` command.

    nice -n 10 python benchmarks/help_latency.py [--passages 10000] [--asks 400] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents_pipeline.core import migrations  # noqa: E402
from agents_pipeline.core.connection import Database  # noqa: E402
from agents_pipeline.core.settings import PROJECT_DIR  # noqa: E402
from agents_pipeline.defs.help import retrieval, service  # noqa: E402
from agents_pipeline.defs.help.corpus import Passage, load_corpus  # noqa: E402
from agents_pipeline.defs.help.knowledge import sync_passages  # noqa: E402

TOPICS = ["scheduler", "billing", "ingest", "crawler", "summariser", "router", "indexer", "mailer",
          "planner", "reviewer", "translator", "classifier", "extractor", "notifier", "auditor"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def generated_passages(real: list[Passage], count: int, rng: random.Random) -> list[Passage]:
    """Distractors in the product's own vocabulary (words drawn from the real docs with their
    frequencies), so common words match thousands of passages as they would in a large corpus."""
    vocab = " ".join(p.body for p in real).replace("`", " ").split()
    out = []
    per_doc = 20
    for i in range(count):
        doc, pos = divmod(i, per_doc)
        topic = TOPICS[doc % len(TOPICS)]
        heading = f"{topic.title()} {doc} > " + " ".join(rng.choice(vocab) for _ in range(rng.randint(2, 5)))
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(80, 220)))
        out.append(Passage(f"docs/generated/{topic}-{doc}.md", heading, f"s{pos}", body, pos))
    return out


def seed_fleet(db: Database, agents: int) -> None:
    def work(cur):
        cur.execute("""INSERT INTO fleet.agents (name, status, status_since, status_message, last_seen)
                       SELECT 'agent-' || lpad(i::text, 4, '0'),
                              (ARRAY['up','up','up','late','down','paused'])[1 + i %% 6],
                              now() - (i || ' seconds')::interval, 'seeded', now() - (i || ' seconds')::interval
                       FROM generate_series(1, %s) i""", (agents,))
        cur.execute("""INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, reason)
                       SELECT agent_id, 'up', 'down', now() - (g || ' hours')::interval, 'grace passed'
                       FROM fleet.agents, generate_series(1, 10) g""")
        cur.execute("""INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject)
                       SELECT 'agent_down:' || agent_id, 'agent_down', 'critical', agent_id, name || ' is down'
                       FROM fleet.agents WHERE status = 'down'""")
        cur.execute("""INSERT INTO fleet.perf_rollups (hour, host, agent_id, metric, samples, min_value, mean_value,
                                                       p50_value, p95_value, max_value)
                       SELECT date_trunc('hour', now()) - (h || ' hours')::interval, 'host', agent_id, m, 60,
                              1, 40, 38, 90, 99
                       FROM fleet.agents, generate_series(0, 23) h,
                            unnest(ARRAY['cpu_percent','rss_bytes','threads','open_fds','io_read_bytes']) m""")
        cur.execute("""INSERT INTO fleet.llm_runs (run_id, project, agent_id, start_time, model, error)
                       SELECT gen_random_uuid(), 'p', agent_id, now() - (g || ' minutes')::interval, 'gpt-x',
                              'RateLimitError'
                       FROM fleet.agents, generate_series(1, 5) g WHERE agent_id % 3 = 0""")
        cur.execute("ANALYZE")

    db.transaction(work)


def run(url: str, passages: int, asks: int, agents: int) -> dict:
    from agents_pipeline_tests.help.questions import QUESTIONS

    rng = random.Random(7)
    db = Database(url, maxconn=2, retry_window=5)
    try:
        real = load_corpus(PROJECT_DIR)
        corpus = real + generated_passages(real, max(0, passages - len(real)), rng)
        started = time.perf_counter()
        report = sync_passages(db, corpus, source="benchmark")
        load_s = time.perf_counter() - started
        seed_fleet(db, agents)

        hits = sum(bool({h.ref for h in retrieval.search(db, q.text)} & set(q.answers)) for q in QUESTIONS)
        questions = [q.text for q in QUESTIONS] + [f"why is agent-{i:04d} down?" for i in range(1, agents, 37)]
        for q in questions[:20]:  # warm the caches and the plans
            service.ask(db, q)
        timings, search_timings = [], []
        for i in range(asks):
            q = questions[i % len(questions)]
            t0 = time.perf_counter()
            service.ask(db, q)
            timings.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            retrieval.search(db, q)
            search_timings.append((time.perf_counter() - t0) * 1000)
        cli = []
        env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", "ask", "why is agent-0005 down?"],
                           env=env, check=True, capture_output=True)
            cli.append((time.perf_counter() - t0) * 1000)
    finally:
        db.close()
    return {
        "passages_indexed": report.passages, "load_s": round(load_s, 2), "agents": agents, "asks": asks,
        "ask_ms": {"p50": round(statistics.median(timings), 1), "p95": round(percentile(timings, 95), 1),
                   "p99": round(percentile(timings, 99), 1), "max": round(max(timings), 1)},
        "search_ms": {"p50": round(statistics.median(search_timings), 1),
                      "p95": round(percentile(search_timings, 95), 1)},
        "cli_wall_ms": {"median": round(statistics.median(cli), 0), "max": round(max(cli), 0)},
        "question_set_top3": f"{hits}/{len(QUESTIONS)}",
        "goal_p95_ms": 300, "goal_met": percentile(timings, 95) <= 300,
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--asks", type=int, default=400)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--url", default=None, help="an EMPTY database to use (default: a throwaway server)")
    args = parser.parse_args()
    if args.url:
        import psycopg2

        from agents_pipeline.core.dsn import connect_kwargs

        conn = psycopg2.connect(**connect_kwargs(args.url))
        migrations.migrate(conn)
        conn.close()
        result = run(args.url, args.passages, args.asks, args.agents)
    else:
        from agents_pipeline_tests import pg

        # the test harness's server, but durable: commits wait for the WAL flush as in production
        durable = ("fsync=on", "synchronous_commit=on", "full_page_writes=on")
        with pg.running_cluster(prefix="ap-bench-help-", settings=durable) as cluster:
            template = pg.create_template(cluster)
            result = run(cluster.url(pg.fresh_database(cluster, template)), args.passages, args.asks, args.agents)
    print(json.dumps(result, indent=2))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
