"""Benchmark: LangSmith runs synced into PostgreSQL from empty, then an unchanged hour re-synced.

The local LangSmith (agents_pipeline_tests/langsmith/fake_langsmith.py, traces from demo_langsmith.py) runs in its own process,
so the peak RSS reported is the sync's alone; it holds realistic traces (one chain root and
four LLM calls each, attributed by root metadata, spread over the last 20 hours). The sync is
the production code path: the pinned langsmith client, 100-run pages, 6-hour transactions.

    python benchmarks/langsmith_sync.py [--runs 100000] [--markdown docs/benchmarks/langsmith.md]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_SECONDS, GOAL_RSS_MB = 60.0, 300.0
PROJECT = "bench-prod"


def _serve(n_runs: int, now: datetime, queue) -> None:
    from agents_pipeline_tests.langsmith.demo_langsmith import realistic_traces
    from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith

    fake = FakeLangSmith()
    fake.bulk_load(realistic_traces(fake, PROJECT, n_runs, now))
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

    from agents_pipeline.defs.langsmith.client import Redactor, close_client, make_client
    from agents_pipeline.defs.langsmith.settings import SyncSettings
    from agents_pipeline.defs.langsmith.source import ListRunsSource
    from agents_pipeline.defs.langsmith.sync import sync_project
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
