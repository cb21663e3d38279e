"""Benchmark: LangSmith runs synced into PostgreSQL from empty, then an unchanged hour re-synced.

The local LangSmith (agents_pipeline_tests/langsmith/fake_langsmith.py) runs in its own process,
so the peak RSS reported is the sync's alone; it holds realistic traces (one chain root and
four LLM calls each, attributed by root metadata, spread over the last 20 hours). The sync is
the production code path: the pinned langsmith client, 100-run pages, 6-hour transactions.

    python benchmarks/langsmith_sync.py [--runs 100000] [--markdown docs/benchmarks/langsmith.md]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_SECONDS, GOAL_RSS_MB = 60.0, 300.0
PROJECT = "bench-prod"
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")


def _traces(fake, n_runs: int, now: datetime) -> list[dict]:
    from agents_pipeline_tests.langsmith.fake_langsmith import ts

    pid = fake.add_project(PROJECT)
    rng = random.Random(7)
    span = timedelta(hours=20)
    runs: list[dict] = []
    for t in range(n_runs // 5):
        start = now - span + span * t / (n_runs // 5)
        root_id = str(uuid.uuid4())
        stamp = start.strftime("%Y%m%dT%H%M%S%fZ")
        children = []
        for c in range(4):
            cs = start + timedelta(milliseconds=200 + 900 * c)
            pt, ct = rng.randint(200, 3000), rng.randint(20, 600)
            cid = str(uuid.uuid4())
            children.append({
                "id": cid, "name": "ChatModel", "run_type": "llm", "session_id": pid, "trace_id": root_id,
                "parent_run_id": root_id, "dotted_order": f"{stamp}{root_id}.{cs.strftime('%Y%m%dT%H%M%S%fZ')}{cid}",
                "start_time": ts(cs), "end_time": ts(cs + timedelta(milliseconds=rng.randint(300, 4000))),
                "status": "success", "error": None, "tags": [],
                "extra": {"metadata": {"ls_model_name": MODELS[c % 3], "ls_provider": "openai"},
                          "invocation_params": {"model": MODELS[c % 3], "temperature": 0.2}},
                "prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                "prompt_cost": pt * 2.5e-6, "completion_cost": ct * 1e-5, "total_cost": pt * 2.5e-6 + ct * 1e-5,
                "first_token_time": None})
        runs.append({
            "id": root_id, "name": "agent_step", "run_type": "chain", "session_id": pid, "trace_id": root_id,
            "parent_run_id": None, "dotted_order": f"{stamp}{root_id}", "start_time": ts(start),
            "end_time": ts(start + timedelta(seconds=5)), "status": "success", "error": None,
            "tags": ["bench"], "extra": {"metadata": {"agent": f"agent-{t % 25:02d}", "thread_id": str(t)}},
            "prompt_tokens": sum(c["prompt_tokens"] for c in children),
            "completion_tokens": sum(c["completion_tokens"] for c in children),
            "total_tokens": sum(c["total_tokens"] for c in children),
            "prompt_cost": None, "completion_cost": None, "total_cost": sum(c["total_cost"] for c in children),
            "first_token_time": None})
        runs.extend(children)
    return runs


def _serve(n_runs: int, now: datetime, queue) -> None:
    from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith

    fake = FakeLangSmith()
    fake.bulk_load(_traces(fake, n_runs, now))
    fake.start()
    queue.put((fake.url, fake.api_key, len(fake.runs)))
    while True:
        time.sleep(3600)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--markdown", default=None, help="write the results section to this file")
    args = parser.parse_args()

    import sqlalchemy as sa

    from agents_pipeline.langsmith.client import Redactor, close_client, make_client
    from agents_pipeline.langsmith.settings import SyncSettings
    from agents_pipeline.langsmith.source import ListRunsSource
    from agents_pipeline.langsmith.sync import sync_project
    from agents_pipeline_tests import pg

    now = datetime.now(UTC).replace(microsecond=0)
    queue = mp.get_context("spawn").Queue()
    server = mp.get_context("spawn").Process(target=_serve, args=(args.runs, now, queue), daemon=True)
    server.start()
    url, key, loaded = queue.get(timeout=600)
    print(f"local LangSmith at {url} holds {loaded} runs", flush=True)
    settings = SyncSettings(projects=(PROJECT,))
    rss_before = _peak_rss_mb()
    with pg.running_cluster(prefix="ap-bench-ls-") as cluster:
        name = pg.fresh_database(cluster, pg.create_template(cluster))
        engine = sa.create_engine(cluster.url(name), pool_size=2)
        client, stats = make_client(api_key=key, endpoint=url)
        source, redact = ListRunsSource(client), Redactor(key)
        try:
            began = time.monotonic()
            full = sync_project(engine, source, PROJECT, settings, redact=redact, now=now)
            full_s = time.monotonic() - began
            assert full.ok, full.error
            rss_peak = _peak_rss_mb()
            hour = (now - timedelta(hours=5), now - timedelta(hours=4))
            began = time.monotonic()
            resync = sync_project(engine, source, PROJECT, settings, redact=redact, now=now, window=hour)
            hour_s = time.monotonic() - began
            began = time.monotonic()
            incremental = sync_project(engine, source, PROJECT, settings, redact=redact,
                                       now=now + timedelta(minutes=15))
            incr_s = time.monotonic() - began
            with engine.begin() as conn:
                stored = conn.execute(sa.text("SELECT count(*), count(agent_name) FROM fleet.llm_runs")).one()
        finally:
            close_client(client)
            engine.dispose()
    server.terminate()
    rows = [
        ("runs synced from empty", f"{full.runs_fetched:,}", f"{full_s:.1f} s",
         f"{full.runs_fetched / full_s:,.0f} runs/s, {full.pages} pages, {full.slices} transactions"),
        ("peak RSS of the sync process", f"{rss_peak:.0f} MB", "", f"{rss_before:.0f} MB before the sync"),
        ("re-sync of an unchanged hour", f"{resync.runs_fetched:,}", f"{hour_s:.2f} s",
         f"{resync.inserted} inserted, {resync.updated} updated"),
        ("next 15-minute sync (2 h look-back)", f"{incremental.runs_fetched:,}", f"{incr_s:.2f} s",
         f"{incremental.inserted} inserted, {incremental.updated} updated"),
    ]
    verdict = (f"goal <= {GOAL_SECONDS:.0f} s: {'met' if full_s <= GOAL_SECONDS else 'NOT met'}; "
               f"goal <= {GOAL_RSS_MB:.0f} MB: {'met' if rss_peak <= GOAL_RSS_MB else 'NOT met'}")
    table = "\n".join(["| measure | runs | time | notes |", "|---|---:|---:|---|",
                       *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)])
    print(table)
    print(f"stored {stored[0]:,} runs, {stored[1]:,} attributed to an agent; {verdict}")
    if args.markdown:
        Path(args.markdown).write_text(
            "## LangSmith sync\n\n"
            f"`python benchmarks/langsmith_sync.py --runs {args.runs}` on {now:%Y-%m-%d} (2 shared cores, "
            "local LangSmith in a separate process, PostgreSQL 15 with fsync off as in the tests).\n\n"
            f"{table}\n\nStored {stored[0]:,} runs, {stored[1]:,} attributed to an agent (roots by metadata, "
            f"LLM children by their root). {verdict}.\n")
    return 0 if full_s <= GOAL_SECONDS and rss_peak <= GOAL_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main())
