"""Drafts a mapping for a legacy file in another dialect, by names and by sampled contents.

Each table is matched to a target by its name (``metrics`` -> fleet.perf_samples), each field
to a column by the column's name and then by what a sample of its values holds (a column of
times for a time field; integers referencing the agents table's key for an agent reference),
and each field's conversion by the sample (``recorded_at`` holding epoch integers and ISO text
-> ``epoch_or_iso``). The draft is YAML with a comment per choice saying what the sample held,
for the operator to check and edit; tables it cannot place go to the ``legacy`` schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agents_pipeline.defs.migration import values as V
from agents_pipeline.defs.migration.mapping import CONVERSIONS, LEGACY_TARGET, TARGETS
from agents_pipeline.defs.migration.source import LegacySource, TableInfo, qident

SAMPLE_ROWS = 500   # from each end of a table

# Target by table-name words, first match wins (documented names first).
TABLE_WORDS: tuple[tuple[str, str], ...] = (
    ("agent_heartbeats", "fleet.heartbeats"), ("performance_metrics", "fleet.perf_samples"),
    ("system_alerts", "fleet.alerts"), ("llm_conversations", "fleet.llm_conversations"),
    ("help_requests", "fleet.help_requests"), ("shared_state", "fleet.kv_store"),
    ("agent_messages", "fleet.agent_messages"), ("system_config", "fleet.system_config"),
    ("heartbeat", "fleet.heartbeats"), ("beat", "fleet.heartbeats"), ("ping", "fleet.heartbeats"),
    ("metric", "fleet.perf_samples"), ("perf", "fleet.perf_samples"), ("sample", "fleet.perf_samples"),
    ("measure", "fleet.perf_samples"), ("alert", "fleet.alerts"), ("conversation", "fleet.llm_conversations"),
    ("llm", "fleet.llm_conversations"), ("help", "fleet.help_requests"), ("question", "fleet.help_requests"),
    ("kv", "fleet.kv_store"), ("message", "fleet.agent_messages"), ("config", "fleet.system_config"),
    ("setting", "fleet.system_config"), ("agent", "fleet.agents"), ("worker", "fleet.agents"), ("bot", "fleet.agents"),
)
TIME_WORDS = ("timestamp", "recorded_at", "received_at", "sampled_at", "created_at", "ts", "time", "at", "date",
              "beat_at", "seen_at", "logged_at")
# Field -> column names that suggest it, best first (the documented column is always tried first).
FIELD_WORDS: dict[str, tuple[str, ...]] = {
    "name": ("agent_id", "name", "agent_name", "slug", "handle"),
    "display_name": ("agent_name", "display_name", "title", "label"),
    "agent_type": ("agent_type", "type", "role", "kind", "class"),
    "status": ("status", "state"),
    "config": ("config", "settings", "options", "configuration"),
    "created_at": ("created_at", "created", "registered_at", "inserted_at"),
    "last_seen": ("last_heartbeat", "last_seen", "seen_at", "last_ping"),
    "enabled": ("is_enabled", "enabled", "active", "is_active"),
    "agent": ("agent_id", "agent", "agent_name", "worker_id", "worker", "bot_id"),
    "received_at": TIME_WORDS,
    "sampled_at": TIME_WORDS,
    "opened_at": ("created_at", *TIME_WORDS),
    "payload": ("metadata", "payload", "data", "details", "extra"),
    "metric": ("metric_name", "metric", "name", "key", "series"),
    "value": ("metric_value", "value", "val", "reading", "amount"),
    "unit": ("unit", "units", "uom"),
    "tags": ("tags", "labels", "attributes", "metadata"),
    "kind": ("alert_type", "type", "kind", "category"),
    "severity": ("severity", "level", "priority"),
    "message": ("message", "text", "body", "msg"),
    "resolved": ("resolved", "is_resolved", "closed"),
    "resolved_at": ("resolved_at", "closed_at"),
    "requested_by": ("user_id", "asked_by", "user", "requested_by"),
    "answer": ("response", "answer", "reply"),
    "answered_at": ("responded_at", "answered_at", "replied_at"),
    "question": ("question", "prompt", "text"),
}
TIME_FIELDS = frozenset({"received_at", "sampled_at", "opened_at", "created_at", "last_seen", "resolved_at",
                         "answered_at", "updated_at"})
AGENT_FIELDS = frozenset({"agent", "from_agent", "to_agent"})
KEY_WORDS = ("id", "agent_id", "uid", "uuid", "key")
_EPOCH_S = (946_684_800, 4_102_444_800)          # 2000-01-01 .. 2100-01-01
_EPOCH_MS = (_EPOCH_S[0] * 1000, _EPOCH_S[1] * 1000)


@dataclass
class Profile:
    """What a sample of one column holds."""

    values: int = 0
    nulls: int = 0
    integers: int = 0
    reals: int = 0
    texts: int = 0
    iso: int = 0
    epoch_s: int = 0
    epoch_ms: int = 0
    json_objects: int = 0
    distinct: set = field(default_factory=set)

    def share(self, count: int) -> float:
        return count / self.values if self.values else 0.0

    @property
    def timelike(self) -> float:
        return self.share(self.iso + self.epoch_s + self.epoch_ms)

    @property
    def numeric(self) -> float:
        return self.share(self.integers + self.reals)

    def describe(self) -> str:
        if not self.values:
            return "sample: all NULL" if self.nulls else "sample: empty table"
        parts = [(self.iso, "ISO text"), (self.epoch_s, "epoch seconds"), (self.epoch_ms, "epoch milliseconds"),
                 (self.json_objects, "JSON objects")]
        parts = [(n, what) for n, what in parts if n]
        if not parts:
            parts = [(n, what) for n, what in ((self.integers, "integers"), (self.reals, "reals"),
                                                (self.texts, "text")) if n]
        return "sample: " + ", ".join(f"{self.share(n):.0%} {what}" for n, what in parts)


def _profile(value: object, prof: Profile) -> None:
    if value is None:
        prof.nulls += 1
        return
    prof.values += 1
    if len(prof.distinct) < 1000:
        prof.distinct.add(value if not isinstance(value, bytes) else bytes(value))
    if type(value) is int:
        prof.integers += 1
        if _EPOCH_S[0] <= value < _EPOCH_S[1]:
            prof.epoch_s += 1
        elif _EPOCH_MS[0] <= value < _EPOCH_MS[1]:
            prof.epoch_ms += 1
    elif type(value) is float:
        prof.reals += 1
        if _EPOCH_S[0] <= value < _EPOCH_S[1]:
            prof.epoch_s += 1
    elif type(value) is str:
        prof.texts += 1
        text = value.strip()
        if text[:1] == "{" and _is_json_object(text):
            prof.json_objects += 1
        elif re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", text):
            try:
                V.timestamp(text, "sample")
                prof.iso += 1
            except V.Reject:
                pass
        elif text.isdigit() and _EPOCH_S[0] <= int(text) < _EPOCH_S[1]:
            prof.epoch_s += 1


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def sample(source: LegacySource, info: TableInfo) -> dict[str, Profile]:
    """Profiles of each column over the first and last SAMPLE_ROWS rows (by rowid when there is one)."""
    profiles = {c: Profile() for c in info.columns}
    capped = ", ".join(f"CASE WHEN length(CAST({qident(c)} AS BLOB)) > 4096 THEN NULL ELSE {qident(c)} END"
                       for c in info.columns)
    table = qident(info.name)
    queries = [f"SELECT {capped} FROM {table} LIMIT {SAMPLE_ROWS}"]  # noqa: S608 - quoted names
    if info.has_rowid and "rowid" not in {c.lower() for c in info.columns}:
        queries = [f"SELECT {capped} FROM {table} ORDER BY rowid LIMIT {SAMPLE_ROWS}",  # noqa: S608
                   f"SELECT {capped} FROM {table} WHERE rowid > {SAMPLE_ROWS} ORDER BY rowid DESC "  # noqa: S608
                   f"LIMIT {SAMPLE_ROWS}"]
    for query in queries:
        for row in source.execute(query).fetchall():
            for col, value in zip(info.columns, row, strict=True):
                _profile(value, profiles[col])
    return profiles


@dataclass
class DraftTable:
    table: str
    target: str
    key: str | None = None
    columns: dict[str, dict] = field(default_factory=dict)      # field -> {"from", "convert"}
    why: dict[str, str] = field(default_factory=dict)           # field -> comment
    ignored: list[str] = field(default_factory=list)
    comment: str = ""


def _target_for(name: str, taken: set[str]) -> str | None:
    lowered = name.lower()
    for word, target in TABLE_WORDS:
        if word in lowered and target not in taken:
            return target
    return None


def _pick(field_name: str, legacy_col: str, profiles: dict[str, Profile], used: set[str]) -> str | None:
    """A column for a field: by name first (checked against the contents for times), then, for
    times, the free column whose sample is most time-like."""
    lowered = {c.lower(): c for c in profiles if c not in used}
    for word in (legacy_col, *FIELD_WORDS.get(field_name, (field_name,))):
        col = lowered.get(word.lower())
        if col is None:
            continue
        if field_name in TIME_FIELDS and profiles[col].values and profiles[col].timelike < 0.5:
            continue
        return col
    if field_name in TIME_FIELDS:
        best = max((c for c in profiles if c not in used), key=lambda c: profiles[c].timelike, default=None)
        if best is not None and profiles[best].timelike >= 0.8:
            return best
    return None


def draft_mapping(source: LegacySource) -> list[DraftTable]:
    """One DraftTable per table of the file, agents first (other tables' references need its key)."""
    profiles = {name: sample(source, info) for name, info in source.tables.items()}
    taken: set[str] = set()
    targets: dict[str, str | None] = {}
    # Documented names claim their targets first, so a look-alike name cannot take them.
    for name in sorted(source.tables, key=lambda n: (TARGETS.get(_documented(n)) is None, n)):
        target = _target_for(name, taken)
        targets[name] = target
        if target:
            taken.add(target)
    drafts: list[DraftTable] = []
    agent_keys: set[str] = set()
    order = sorted(source.tables, key=lambda n: targets[n] != "fleet.agents")
    for name in order:
        target = targets[name]
        if target is None:
            drafts.append(DraftTable(name, LEGACY_TARGET, comment="no target matched its name: copied as it is"))
            continue
        draft = _draft_table(name, target, profiles[name], agent_keys)
        if target == "fleet.agents" and draft.key:
            agent_keys = {str(v) for v in profiles[name][draft.key].distinct}
        drafts.append(draft)
    return drafts


def _documented(name: str) -> str:
    for target, spec in TARGETS.items():
        if spec.legacy == name:
            return target
    return ""


def _draft_table(name: str, target: str, profiles: dict[str, Profile], agent_keys: set[str]) -> DraftTable:
    spec = TARGETS[target]
    draft = DraftTable(name, target)
    used: set[str] = set()
    for field_name, legacy_col in spec.fields.items():
        col = _pick(field_name, legacy_col, profiles, used)
        if col is None:
            continue
        prof = profiles[col]
        convert = "as_is"
        if field_name in TIME_FIELDS:
            convert = "epoch_ms" if prof.epoch_ms and prof.epoch_ms >= prof.epoch_s + prof.iso else "epoch_or_iso"
        elif field_name in AGENT_FIELDS and agent_keys and prof.values:
            hits = sum(1 for v in prof.distinct if str(v) in agent_keys)
            if prof.integers and hits >= 0.5 * len(prof.distinct):
                convert = "agent_key"
        draft.columns[field_name] = {"from": col, "convert": convert}
        draft.why[field_name] = prof.describe()
        used.add(col)
    if target == "fleet.agents":
        name_col = draft.columns.get("name", {}).get("from")
        for word in KEY_WORDS:
            col = next((c for c in profiles if c.lower() == word and c != name_col), None)
            if col is not None and profiles[col].integers:
                draft.key = col
                used.add(col)
                break
    if target == "fleet.heartbeats" and "payload" not in draft.columns:
        numbers = [c for c in profiles if c not in used and profiles[c].values and profiles[c].numeric >= 0.8
                   and c.lower() not in ("id", "rowid")]
        if numbers:
            draft.columns["payload"] = {"from": numbers, "convert": "json_object"}
            draft.why["payload"] = "numeric columns kept together as the heartbeat's payload"
            used.update(numbers)
    draft.ignored = [c for c in profiles if c not in used]
    missing = [f for f in spec.required if f not in draft.columns]
    if missing:
        draft.comment = f"EDIT: no column found for required field(s) {', '.join(missing)}"
    return draft


def render(drafts: list[DraftTable], path: str) -> str:
    """The draft as commented YAML (names as JSON strings, which YAML reads as they are)."""
    q = json.dumps
    lines = [f"# Mapping drafted by `agents-pipeline migrate-sqlite --dry-run --write-mapping` from {path}.",
             "# Check each choice (the comments say what a sample of the column held), edit, then run",
             "#   agents-pipeline migrate-sqlite FILE --mapping THIS_FILE",
             "# targets: " + ", ".join([*TARGETS, LEGACY_TARGET]),
             "# conversions: " + "; ".join(f"{k}: {v}" for k, v in CONVERSIONS.items()),
             "version: 1", "tables:"]
    for d in drafts:
        lines.append(f"  {q(d.table)}:" + (f"  # {d.comment}" if d.comment else ""))
        lines.append(f"    target: {q(d.target)}")
        if d.target == LEGACY_TARGET:
            continue
        fields = ", ".join(TARGETS[d.target].fields)
        if d.key:
            lines.append(f"    key: {q(d.key)}  # other tables reference agents by this column (agent_key)")
        lines.append(f"    columns:  # fields of {d.target}: {fields}")
        for name, col in d.columns.items():
            src = col["from"]
            lines.append(f"      {q(name)}: {{from: {q(src)}, convert: {q(col['convert'])}}}  # {d.why.get(name, '')}")
        if not d.columns:
            lines[-1] = lines[-1].replace("columns:", "columns: {}")
        lines.append(f"    ignored: {q(d.ignored)}  # source columns not imported")
    return "\n".join(lines) + "\n"
