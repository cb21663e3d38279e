"""A local LangSmith with realistic traces: bulk data for the benchmark, and a demo server.

    python -m agents_pipeline_tests.langsmith.demo_langsmith --port 1984

serves a day of traces (one chain root claiming an agent, four LLM calls each) and adds a new
trace every 10 s, posted pending and finished seconds later, so that `make run` shows the sync
and the usage plots moving. Point LANGSMITH_ENDPOINT at it; the key is LANGSMITH_API_KEY or
``lsv2_pt_local_demo_key``.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith, _Handler, ts

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")


def realistic_traces(fake: FakeLangSmith, project: str, n_runs: int, now: datetime,
                     span: timedelta = timedelta(hours=20), agents: int = 25) -> list[dict[str, Any]]:
    """Traces of one chain root (claiming an agent in metadata) and four LLM calls, for bulk_load."""
    pid = fake.add_project(project)
    rng = random.Random(7)
    runs: list[dict[str, Any]] = []
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
            "tags": ["bench"], "extra": {"metadata": {"agent": f"agent-{t % agents:02d}", "thread_id": str(t)}},
            "prompt_tokens": sum(c["prompt_tokens"] for c in children),
            "completion_tokens": sum(c["completion_tokens"] for c in children),
            "total_tokens": sum(c["total_tokens"] for c in children),
            "prompt_cost": None, "completion_cost": None, "total_cost": sum(c["total_cost"] for c in children),
            "first_token_time": None})
        runs.extend(children)
    return runs



def _live_traces(fake: FakeLangSmith, project: str, every: float) -> None:
    """New traces keep arriving, each posted pending and finished a few seconds later."""
    rng = random.Random()
    while True:
        start = datetime.now(UTC)
        root = fake.add_run(project, start_time=start, run_type="chain", name="agent_step",
                            metadata={"agent": f"agent-{rng.randrange(5):02d}"})
        time.sleep(min(every, 3))
        for i in range(2):
            fake.add_run(project, start_time=start + timedelta(milliseconds=100 + 500 * i),
                         end_time=start + timedelta(milliseconds=500 + 500 * i), parent=root,
                         prompt_tokens=rng.randint(100, 2000), completion_tokens=rng.randint(10, 300),
                         cost=round(rng.uniform(0.0005, 0.02), 5), model=rng.choice(MODELS),
                         error="rate limited by provider" if rng.random() < 0.05 else None)
        fake.finish_run(root["id"], end_time=datetime.now(UTC))
        time.sleep(max(0.0, every - 3))


def main(argv: list[str] | None = None) -> int:
    """Serves a local LangSmith for `make run` demos (LANGSMITH_ENDPOINT=http://127.0.0.1:PORT)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=1984)
    parser.add_argument("--project", default="fleet-prod")
    parser.add_argument("--runs", type=int, default=5000, help="runs to seed over the last day (5 per trace)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between new live traces (0: none)")
    args = parser.parse_args(argv)
    fake = FakeLangSmith(api_key=os.environ.get("LANGSMITH_API_KEY") or "lsv2_pt_local_demo_key")
    fake.bulk_load(realistic_traces(fake, args.project, args.runs, datetime.now(UTC), span=timedelta(hours=24)))
    handler = type("Handler", (_Handler,), {"fake": fake})
    fake._server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    print(f"local LangSmith on {fake.url} (project {args.project}, {len(fake.runs)} runs); Ctrl-C stops",
          file=sys.stderr)
    if args.every > 0:
        threading.Thread(target=_live_traces, args=(fake, args.project, args.every), daemon=True).start()
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
