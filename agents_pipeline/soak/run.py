"""One soak from start to report: run the harness, read the three records, write the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from agents_pipeline.soak import findings as fd
from agents_pipeline.soak import report
from agents_pipeline.soak.harness import Harness

log = logging.getLogger(__name__)


def soak(out: Path, minutes: float, agents: int, *, record: bool = True) -> dict[str, Any]:
    """Runs the soak and writes its report into ``out`` (REPORT.md, PNG plots, findings.json: what
    can be committed); the processes' logs and the agents' ledgers stay in a work folder under /tmp,
    named in the findings. Returns the findings, with ``verdict`` and ``report``."""
    import tempfile

    from agents_pipeline.defs.retention.policy import retention_days

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="agents-pipeline-soak-work-"))
    harness = Harness(work, minutes, agents)
    try:
        run = harness.execute()
        ledger = fd.read_ledgers(work / "ledgers")
        stored = fd.read_database(harness.stack.url, run.started_at, retention_days().get("heartbeats", 30))
        detection, accuracy = fd.detection_and_accuracy(run, ledger, stored, harness.stack.receiver.notices(),
                                                        harness.sampler.samples)
        found: dict[str, Any] = {
            "minutes": minutes, "agents": agents,
            "delivery": fd.delivery(ledger, stored), "detection": detection, "accuracy": accuracy,
            "resources": fd.resources(harness.sampler.samples, (run.started_at + run.ended_at) / 2),
            "storage": fd.storage(stored, run),
            "logs": str(work), "harness_errors": run.errors,
            "faults": [{"kind": f.kind, "at_s": round(f.at - run.started_at, 1), "hosts": f.hosts,
                        "restored_s": round(f.restored_at - run.started_at, 1) if f.restored_at else None}
                       for f in run.injected],
        }
        images = report.plots(out, run, harness.sampler.samples, stored.per_bucket)
    finally:
        harness.close()
    text = report.markdown(run, found, images)
    log.info("report in %s, logs and ledgers in %s", out, work)
    path = out / "REPORT.md"
    path.write_text(text)
    (out / "findings.json").write_text(json.dumps(found, indent=2, default=str))
    found["verdict"] = report.verdict(found)
    found["report"] = str(path)
    found["recorded"] = report.record(found, path, text) if record else "not recorded (--no-record)"
    return found
