"""How each legacy table maps into the fleet schema: columns read, conversion, target, digest.

A converter takes (rowid, legacy values in ``columns`` order, context) and returns the target
values in ``targets`` order, or raises ``Reject``. Imported data is history, not live events:
agents arrive paused, alerts carry ``imported`` (never notified), help requests are
'imported' or 'answered' (never picked up by the answerer), conversations with a LangSmith run
id are marked as already sent, messages arrive acknowledged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agents_pipeline.core.shared_state import conversation_run_id
from agents_pipeline.defs.migration import values as V
from agents_pipeline.defs.migration.values import Reject

# The live API's limit on a metric name (SharedState.report_metrics); a much longer one would
# also not fit in an entry of the perf_samples index and fail the whole batch's COPY.
METRIC_NAME_MAX = 200
HEARTBEAT_KIND = {"error": "fail", "failed": "fail", "fail": "fail", "starting": "start", "start": "start",
                  "stopping": "log", "stopped": "log", "log": "log"}
_SEVERITY = {"info": "info", "warning": "warning", "warn": "warning", "critical": "critical",
             "error": "critical", "high": "critical", "fatal": "critical", "low": "info"}


@dataclass
class Context:
    """What converters need beyond the row: the source and the agent name -> id map."""

    source_id: int
    source_name: str
    now: datetime
    agents: dict[str, int] = field(default_factory=dict)

    def agent(self, value: object, col: str, required: bool = False) -> int | None:
        agent_name = V.name(value, col)
        if agent_name is None:
            if required:
                raise Reject(f"{col}: missing (NULL) but required")
            return None
        try:
            return self.agents[agent_name]
        except KeyError:
            raise Reject(f"{col}: agent {agent_name!r} has no row in PostgreSQL") from None


@dataclass(frozen=True)
class TableSpec:
    legacy: str
    target: str
    columns: tuple[str, ...]
    targets: tuple[str, ...]
    convert: Callable[[int, tuple, Context], tuple]
    digest: tuple[tuple[str, str], ...]     # (target column, kind); legacy_id is always first
    staged: bool = True                     # COPY into a temp table, then INSERT .. ON CONFLICT
    conflict_sql: str = "ON CONFLICT DO NOTHING"
    conflict_reason: str = "conflicts with a row already in PostgreSQL"
    partition: str | None = None            # partitioned target: the partition key column
    unique: str | None = None               # direct COPY: a unique column checked before the COPY
    unique_type: str = "text"
    batch_divisor: int = 1                  # wide rows: smaller batches keep memory bounded
    agent_refs: tuple[str, ...] = ()


def _agent(rowid: int, row: tuple, ctx: Context) -> tuple:
    agent_id, agent_name, agent_type, status, config, created_at, last_heartbeat, is_enabled = row
    name = V.name(agent_id, "agent_id")
    if name is None:
        raise Reject("agent_id: missing (NULL) but required")
    cfg = json.loads(V.json_object(config, "config"))
    if not isinstance(cfg, dict):
        raise Reject("config: JSON is not an object")
    last = V.timestamp(last_heartbeat, "last_heartbeat")
    legacy_status = V.text(status, "status")
    cfg["legacy_import"] = {"agent_name": V.text(agent_name, "agent_name"), "status": legacy_status,
                            "enabled": V.boolean(is_enabled, "is_enabled"), "source": ctx.source_name}
    message = (f"imported from legacy SQLite {ctx.source_name} (legacy status {legacy_status or 'unknown'}, "
               f"last heartbeat {last.isoformat() if last else 'never'}); paused until an operator runs "
               f"`agents-pipeline agents resume {name}`")
    return (name, V.text(agent_type, "agent_type") or "generic", "paused", True, message,
            json.dumps(cfg, ensure_ascii=False), last, V.timestamp(created_at, "created_at") or ctx.now, False)


def _heartbeat(rowid: int, row: tuple, ctx: Context) -> tuple:
    agent_id, ts, status, metadata = row
    status_text = V.text(status, "status")
    kind = HEARTBEAT_KIND.get(status_text.strip().lower(), "ok") if status_text else "ok"
    return (ctx.agent(agent_id, "agent_id", required=True), V.required_timestamp(ts, "timestamp"), kind,
            status_text, V.json_document(metadata, "metadata"))


def _metric(rowid: int, row: tuple, ctx: Context) -> tuple:
    ts, agent_id, metric_name, metric_value, unit, tags = row
    unit_text = V.text(unit, "unit")
    if unit_text is None and type(metric_value) is str and metric_value.strip().endswith("%"):
        unit_text = "%"
    return (V.required_timestamp(ts, "timestamp"), "legacy", ctx.agent(agent_id, "agent_id"),
            V.required_text(metric_name, "metric_name", METRIC_NAME_MAX), V.real(metric_value, "metric_value"), "imported",
            unit_text, V.json_document(tags, "tags"))


def _alert(rowid: int, row: tuple, ctx: Context) -> tuple:
    alert_type, severity, agent_id, message, created_at, resolved, resolved_at = row
    kind = V.required_text(alert_type, "alert_type")
    raw_severity = V.text(severity, "severity")
    details: dict = {"legacy_id": rowid}
    level = _SEVERITY.get((raw_severity or "warning").strip().lower())
    if level is None or level != raw_severity:
        details["legacy_severity"] = raw_severity
    text_message = V.text(message, "message")
    opened = V.required_timestamp(created_at, "created_at")
    closed = V.timestamp(resolved_at, "resolved_at")
    if V.boolean(resolved, "resolved") and closed is None:
        closed = opened
        details["resolved_time_unknown"] = True
    subject = ((text_message or "").strip().splitlines() or [kind])[0][:200] or kind
    return (f"legacy:{ctx.source_id}:{rowid}", kind, level or "warning", ctx.agent(agent_id, "agent_id"),
            subject, text_message, json.dumps(details, ensure_ascii=False), opened, closed, True)


def _conversation(rowid: int, row: tuple, ctx: Context) -> tuple:
    (conversation_id, agent_id, run_id, model, prompt, response, prompt_tokens, completion_tokens,
     total_tokens, cost, latency_ms, created_at, metadata) = row
    agent_name = V.name(agent_id, "agent_id")
    agent_pk = ctx.agent(agent_name, "agent_id")
    created = V.required_timestamp(created_at, "created_at")
    conv_id, prompt_text = V.text(conversation_id, "conversation_id"), V.text(prompt, "prompt")
    meta = V.json_object(metadata, "metadata")
    run_text = (V.text(run_id, "run_id") or "").strip()
    sent_at = None
    try:
        run_uuid = uuid.UUID(run_text)
        sent_at = created  # traced by LangSmith already: never pushed again
    except ValueError:
        run_uuid = conversation_run_id(agent_name or "", conv_id, created, prompt_text)
        if run_text:
            doc = json.loads(meta)
            doc = doc if isinstance(doc, dict) else {"legacy_metadata": doc}
            doc["legacy_run_id"] = run_text
            meta = json.dumps(doc, ensure_ascii=False)
    return (conv_id, agent_pk, run_uuid, V.text(model, "model"), prompt_text, V.text(response, "response"),
            V.integer(prompt_tokens, "prompt_tokens", 32), V.integer(completion_tokens, "completion_tokens", 32),
            V.integer(total_tokens, "total_tokens", 32), V.numeric(cost, "cost"), V.real(latency_ms, "latency_ms"),
            created, meta, sent_at)


def _help(rowid: int, row: tuple, ctx: Context) -> tuple:
    user_id, question, context, response, status, created_at, responded_at, sources = row
    answer = V.text(response, "response")
    legacy_status = V.text(status, "status")
    doc = json.loads(V.json_object(context, "context"))
    doc = doc if isinstance(doc, dict) else {"legacy_context": doc}
    doc["legacy_status"] = legacy_status
    answered = answer is not None or (legacy_status or "").strip().lower() == "answered"
    return (V.text(user_id, "user_id"), V.required_text(question, "question"), json.dumps(doc, ensure_ascii=False),
            "answered" if answered else "imported", answer, V.json_document(sources, "sources"),
            V.required_timestamp(created_at, "created_at"), V.timestamp(responded_at, "responded_at"))


def _key(value: object, col: str, limit: int) -> str:
    key = V.required_text(value, col)
    if not 1 <= len(key) <= limit or V._CONTROL.search(key):
        raise Reject(f"{col}: {key[:40]!r} is not a valid key (1-{limit} characters, no control characters)")
    return key


def _kv(rowid: int, row: tuple, ctx: Context) -> tuple:
    key, value, updated_by, updated_at, version = row
    number = V.integer(version, "version")
    if number is not None and number < 1:
        raise Reject(f"version: {number} is not a valid version (>= 1)")
    return (_key(key, "key", 512), V.json_or_string(value, "value"), number or 1, V.text(updated_by, "updated_by"),
            V.timestamp(updated_at, "updated_at") or ctx.now)


def _message(rowid: int, row: tuple, ctx: Context) -> tuple:
    from_agent, to_agent, message_type, payload, created_at, processed = row
    created = V.required_timestamp(created_at, "created_at")
    done = V.boolean(processed, "processed")
    # History: every imported message is acknowledged so no live agent claims a stale command;
    # claimed_at tells the processed ones (claimed_at set) from the never-processed ones.
    return (ctx.agent(from_agent, "from_agent"), ctx.agent(to_agent, "to_agent"),
            V.required_text(message_type, "message_type"), V.json_object(payload, "payload"), created,
            created if done else None, created, True)


def _config(rowid: int, row: tuple, ctx: Context) -> tuple:
    key, value, description, updated_at = row
    return (_key(key, "key", 10_000), V.json_or_string(value, "value"), V.text(description, "description"),
            V.timestamp(updated_at, "updated_at") or ctx.now)


_AGENT_COLS = ("name", "agent_type", "status", "paused", "status_message", "config", "last_seen", "created_at",
               "placeholder")
_AGENT_UPGRADE = ("ON CONFLICT (name) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in (*_AGENT_COLS, "legacy_source", "legacy_id"))
    + " WHERE agents.placeholder")

SPECS: tuple[TableSpec, ...] = (
    TableSpec("agents", "agents",
              ("agent_id", "agent_name", "agent_type", "status", "config", "created_at", "last_heartbeat", "is_enabled"),
              _AGENT_COLS, _agent, (("name", "text"),), conflict_sql=_AGENT_UPGRADE,
              conflict_reason="an agent with this name is already registered in PostgreSQL; it was kept"),
    TableSpec("shared_state", "kv_store", ("key", "value", "updated_by", "updated_at", "version"),
              ("key", "value", "version", "updated_by", "updated_at"), _kv, (("key", "text"),),
              conflict_reason="key already present in PostgreSQL; its current value was kept"),
    TableSpec("system_config", "system_config", ("key", "value", "description", "updated_at"),
              ("key", "value", "description", "updated_at"), _config, (("key", "text"),),
              conflict_reason="config key already present in PostgreSQL; its current value was kept"),
    TableSpec("agent_heartbeats", "heartbeats", ("agent_id", "timestamp", "status", "metadata"),
              ("agent_id", "received_at", "kind", "message", "payload"), _heartbeat,
              (("agent_id", "int"), ("received_at", "ts"), ("kind", "text"), ("message", "text"), ("payload", "json")),
              staged=False, partition="received_at", agent_refs=("agent_id",)),
    TableSpec("performance_metrics", "perf_samples",
              ("timestamp", "agent_id", "metric_name", "metric_value", "unit", "tags"),
              ("sampled_at", "host", "agent_id", "metric", "value", "source", "unit", "tags"), _metric,
              (("sampled_at", "ts"), ("agent_id", "int"), ("metric", "text"), ("value", "float"), ("unit", "text"),
               ("tags", "json")),
              staged=False, partition="sampled_at", agent_refs=("agent_id",)),
    TableSpec("system_alerts", "alerts",
              ("alert_type", "severity", "agent_id", "message", "created_at", "resolved", "resolved_at"),
              ("alert_key", "kind", "severity", "agent_id", "subject", "message", "details", "opened_at",
               "resolved_at", "imported"), _alert,
              (("alert_key", "text"), ("kind", "text"), ("agent_id", "int"), ("message", "text"), ("opened_at", "ts")),
              agent_refs=("agent_id",)),
    TableSpec("llm_conversations", "llm_conversations",
              ("conversation_id", "agent_id", "run_id", "model", "prompt", "response", "prompt_tokens",
               "completion_tokens", "total_tokens", "cost", "latency_ms", "created_at", "metadata"),
              ("conversation_id", "agent_id", "run_id", "model", "prompt", "response", "prompt_tokens",
               "completion_tokens", "total_tokens", "cost", "latency_ms", "created_at", "metadata",
               "langsmith_sent_at"), _conversation,
              (("conversation_id", "text"), ("agent_id", "int"), ("run_id", "uuid"), ("model", "text"),
               ("prompt", "text"), ("response", "text"), ("prompt_tokens", "int"), ("completion_tokens", "int"),
               ("total_tokens", "int"), ("cost", "numeric"), ("latency_ms", "float"), ("created_at", "ts"),
               ("metadata", "json")),
              staged=False, unique="run_id", unique_type="uuid",
              conflict_reason="run_id already present in PostgreSQL (the same conversation twice)",
              batch_divisor=10, agent_refs=("agent_id",)),
    TableSpec("help_requests", "help_requests",
              ("user_id", "question", "context", "response", "status", "created_at", "responded_at", "sources"),
              ("requested_by", "question", "context", "status", "answer", "sources", "created_at", "answered_at"),
              _help, (("requested_by", "text"), ("question", "text"), ("answer", "text"), ("created_at", "ts"))),
    TableSpec("agent_messages", "agent_messages",
              ("from_agent", "to_agent", "message_type", "payload", "created_at", "processed"),
              ("from_agent_id", "to_agent_id", "message_type", "payload", "created_at", "claimed_at", "acked_at",
               "imported"), _message,
              (("from_agent_id", "int"), ("to_agent_id", "int"), ("message_type", "text"), ("created_at", "ts")),
              agent_refs=("from_agent", "to_agent")),
)

KNOWN = {spec.legacy: spec for spec in SPECS}
