"""A mapping for legacy files in another dialect: source table and column -> target field, with a
conversion, read from a YAML file the operator drafted (``draft.py``) and edited.

How it is applied: for each mapped table, a TEMP VIEW named after the documented legacy table
(``agent_heartbeats``, ...) presents the source table in the documented layout, so the one
pipeline that already converts, rejects, resumes and verifies documented files runs unchanged
over it (rowid is passed through, so resume points and the rowid range reads still use the
source table's rowid). Temp objects live in SQLite's temp schema: the file is never written,
and a temp view shadows a main table of the same name for unqualified reads.

The file is input, not code: ``yaml.safe_load`` only, a size cap, a schema (pydantic, extra keys
refused), and every name checked against the known targets, fields and conversions, and against
the file's own tables and columns. Names reach SQLite only quoted; a constant only as a literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_MAPPING_BYTES = 1024 * 1024
EPOCH_MIN, EPOCH_MAX = 946_684_800, 4_102_444_800   # 2000-01-01, 2100-01-01: values.EARLIEST, LATEST
KEY_TABLE = "ap_agent_keys"
LEGACY_TARGET = "legacy"


class MappingError(Exception):
    """The mapping file cannot be used; the message names the problem in one line."""


@dataclass(frozen=True)
class Target:
    """A fleet table a source table can be mapped onto: its documented legacy table and the
    fields a mapping may fill (field -> documented legacy column)."""

    legacy: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "fleet.agents": Target("agents", {
        "name": "agent_id", "display_name": "agent_name", "agent_type": "agent_type", "status": "status",
        "config": "config", "created_at": "created_at", "last_seen": "last_heartbeat", "enabled": "is_enabled"},
        ("name",)),
    "fleet.heartbeats": Target("agent_heartbeats", {
        "agent": "agent_id", "received_at": "timestamp", "status": "status", "payload": "metadata"},
        ("agent", "received_at")),
    "fleet.perf_samples": Target("performance_metrics", {
        "sampled_at": "timestamp", "agent": "agent_id", "metric": "metric_name", "value": "metric_value",
        "unit": "unit", "tags": "tags"}, ("sampled_at", "metric")),
    "fleet.alerts": Target("system_alerts", {
        "kind": "alert_type", "severity": "severity", "agent": "agent_id", "message": "message",
        "opened_at": "created_at", "resolved": "resolved", "resolved_at": "resolved_at"}, ("kind", "opened_at")),
    "fleet.llm_conversations": Target("llm_conversations", {
        "conversation_id": "conversation_id", "agent": "agent_id", "run_id": "run_id", "model": "model",
        "prompt": "prompt", "response": "response", "prompt_tokens": "prompt_tokens",
        "completion_tokens": "completion_tokens", "total_tokens": "total_tokens", "cost": "cost",
        "latency_ms": "latency_ms", "created_at": "created_at", "metadata": "metadata"}, ("created_at",)),
    "fleet.help_requests": Target("help_requests", {
        "requested_by": "user_id", "question": "question", "context": "context", "answer": "response",
        "status": "status", "created_at": "created_at", "answered_at": "responded_at", "sources": "sources"},
        ("question", "created_at")),
    "fleet.kv_store": Target("shared_state", {
        "key": "key", "value": "value", "updated_by": "updated_by", "updated_at": "updated_at",
        "version": "version"}, ("key",)),
    "fleet.agent_messages": Target("agent_messages", {
        "from_agent": "from_agent", "to_agent": "to_agent", "message_type": "message_type", "payload": "payload",
        "created_at": "created_at", "processed": "processed"}, ("message_type", "created_at")),
    "fleet.system_config": Target("system_config", {
        "key": "key", "value": "value", "description": "description", "updated_at": "updated_at"}, ("key",)),
}
AGENT_FIELDS = frozenset({"agent", "from_agent", "to_agent"})

# What each conversion does before the target's own converter (values.py) checks the value.
CONVERSIONS: dict[str, str] = {
    "as_is": "the value unchanged (the target's converter checks it)",
    "epoch_or_iso": "a time as ISO text or epoch seconds (integer, real or digits), whichever each row holds",
    "epoch_ms": "epoch milliseconds (numbers), other values as epoch_or_iso",
    "text": "the value as text (numbers in SQLite's text form)",
    "agent_key": "an agent reference by the agents table's `key` column, replaced by that agent's name",
    "json_object": "several columns as one JSON object {column: value}",
    "constant": "the same `value` for every row",
}
Scalar = str | int | float | bool | None


class ColumnMap(BaseModel):
    """One target field: where its value comes from and how it is converted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str | list[str] | None = Field(default=None, alias="from")
    convert: str = "as_is"
    value: Scalar = None


class TableMap(BaseModel):
    """One source table: its target and its fields (absent fields are NULL)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    key: str | None = None                      # agents: the column other tables reference
    columns: dict[str, ColumnMap] = Field(default_factory=dict)
    ignored: list[str] = Field(default_factory=list)   # source columns knowingly not imported


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    tables: dict[str, TableMap]

    def fleet_tables(self) -> dict[str, TableMap]:
        return {name: t for name, t in self.tables.items() if t.target != LEGACY_TARGET}


def load_mapping(path: str | Path) -> Mapping:
    """Reads, parses and checks a mapping file; anything wrong is one MappingError line."""
    file = Path(path).expanduser()
    try:
        with file.open("rb") as fh:
            raw = fh.read(MAX_MAPPING_BYTES + 1)
    except OSError as exc:
        raise MappingError(f"mapping {file}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_MAPPING_BYTES:
        raise MappingError(f"mapping {file}: larger than {MAX_MAPPING_BYTES:,} bytes, not a mapping")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise MappingError(f"mapping {file}: not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_mapping(doc, str(file))


def parse_mapping(doc: object, name: str = "mapping") -> Mapping:
    if not isinstance(doc, dict):
        raise MappingError(f"{name}: expected a YAML mapping with 'version: 1' and 'tables:', got {type(doc).__name__}")
    try:
        mapping = Mapping.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"{name}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from None
    _check_names(mapping, name)
    return mapping


def _check_names(mapping: Mapping, name: str) -> None:
    seen: dict[str, str] = {}
    for table, spec in mapping.tables.items():
        if spec.target == LEGACY_TARGET:
            if spec.columns or spec.key:
                raise MappingError(f"{name}: table {table!r}: target 'legacy' copies the table as it is; "
                                   "it takes no columns or key")
            continue
        target = TARGETS.get(spec.target)
        if target is None:
            raise MappingError(f"{name}: table {table!r}: unknown target {spec.target!r} "
                               f"(known: {', '.join([*TARGETS, LEGACY_TARGET])})")
        if spec.target in seen:
            raise MappingError(f"{name}: tables {seen[spec.target]!r} and {table!r} both map onto {spec.target}")
        seen[spec.target] = table
        if spec.key is not None and spec.target != "fleet.agents":
            raise MappingError(f"{name}: table {table!r}: 'key' is only for the table mapped onto fleet.agents")
        for field, col in spec.columns.items():
            where = f"{name}: {table}.{field}"
            if field not in target.fields:
                raise MappingError(f"{where}: unknown target field of {spec.target} "
                                   f"(known: {', '.join(target.fields)})")
            if col.convert not in CONVERSIONS:
                raise MappingError(f"{where}: unknown conversion {col.convert!r} (known: {', '.join(CONVERSIONS)})")
            if col.convert == "constant":
                if col.source is not None:
                    raise MappingError(f"{where}: conversion 'constant' takes 'value', not 'from'")
            elif col.value is not None:
                raise MappingError(f"{where}: 'value' is only for conversion 'constant'")
            elif col.convert == "json_object":
                if not isinstance(col.source, list) or not col.source:
                    raise MappingError(f"{where}: conversion 'json_object' needs 'from' as a list of columns")
            elif not isinstance(col.source, str):
                raise MappingError(f"{where}: 'from' must name one source column for conversion {col.convert!r}")
            if col.convert == "agent_key" and field not in AGENT_FIELDS:
                raise MappingError(f"{where}: conversion 'agent_key' is only for agent references "
                                   f"({', '.join(sorted(AGENT_FIELDS))})")
        missing = [f for f in target.required if f not in spec.columns]
        if missing:
            raise MappingError(f"{name}: table {table!r}: field(s) {', '.join(missing)} of {spec.target} are required")
    agents = next((t for t in mapping.tables.values() if t.target == "fleet.agents"), None)
    uses_keys = [f"{t}.{f}" for t, s in mapping.tables.items() for f, c in s.columns.items() if c.convert == "agent_key"]
    if uses_keys and (agents is None or agents.key is None):
        raise MappingError(f"{name}: {uses_keys[0]} uses 'agent_key' but no table mapped onto fleet.agents "
                           "names its 'key' column")


def to_dict(mapping: Mapping) -> dict:
    """The mapping as stored with the run's report."""
    return mapping.model_dump(by_alias=True, exclude_defaults=True)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Scalar) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _expr(col: ColumnMap, table: str, key_col: str | None, field: str = "") -> str:
    """SQL for one field over the source table aliased ``s`` (names quoted, constants literal)."""
    if col.convert == "constant":
        return _literal(col.value)
    if col.convert == "json_object":
        return "json_object(" + ", ".join(f"{_literal(c)}, s.{_q(c)}" for c in col.source) + ")"  # type: ignore[union-attr]
    src = f"s.{_q(str(col.source))}"
    # Integer epochs in the converters' sensible range become the ISO text of the same second
    # (exact: both sides count whole seconds from 1970 in UTC), so that SQLite's set-based path
    # (fastpath.py) takes those rows instead of the per-value converters; every other value
    # (reals, digits in text, out of range) is passed as it is, and converted or rejected there.
    in_range, ms_range = _epoch_range(src, 1), _epoch_range(src, 1000)
    if col.convert == "epoch_or_iso":
        return f"CASE WHEN {in_range} THEN strftime('%Y-%m-%dT%H:%M:%S', {src}, 'unixepoch') ELSE {src} END"
    if col.convert == "epoch_ms":
        return (f"CASE WHEN {ms_range} THEN strftime('%Y-%m-%dT%H:%M:%S', {src} / 1000, 'unixepoch') "
                f"|| printf('.%03d', {src} % 1000) "
                f"WHEN typeof({src}) IN ('integer', 'real') THEN {src} / 1000.0 ELSE {src} END")
    if col.convert == "text":
        return f"CAST({src} AS TEXT)"
    if col.convert == "agent_key":
        # The key table is joined in the view (``apply_sql``) as k_<field>: a join on its primary
        # key, cheaper per row than a correlated lookup. A key with no agent row still names an
        # agent (a placeholder), as an unknown name does.
        label = _literal(f"{table}.{key_col}=")
        return f"coalesce({_q('k_' + field)}.name, {label} || CAST({src} AS TEXT))"
    return src


def _epoch_range(src: str, per_second: int) -> str:
    return f"typeof({src}) = 'integer' AND {src} >= {EPOCH_MIN * per_second} AND {src} < {EPOCH_MAX * per_second}"


def _micros_expr(col: ColumnMap) -> str | None:
    """For a time converted from epoch numbers: the epoch microseconds of the rows the view
    renders from an in-range integer (NULL for the others), exactly the time its ISO text
    reads. The set-based path (fastpath.py) takes them instead of checking and parsing that
    text again; the ISO text the source held is checked as before."""
    src = f"s.{_q(str(col.source))}"
    if col.convert == "epoch_or_iso":
        return f"CASE WHEN {_epoch_range(src, 1)} THEN {src} * 1000000 END"
    if col.convert == "epoch_ms":
        return f"CASE WHEN {_epoch_range(src, 1000)} THEN {src} * 1000 END"
    return None


COMPANION = "$"   # in a view column's name: a companion of a documented column, never one itself


def micros_column(column: str) -> str:
    """The view's companion column of a documented time column (see ``_micros_expr``)."""
    return column + COMPANION + "us"


def agent_id_column(column: str) -> str:
    """The view's companion column of an agent_key column: the agent_id its key resolved to
    (``KEY_TABLE.id``, set once the run knows its agents), NULL for a key without an agent row."""
    return column + COMPANION + "id"


@dataclass(frozen=True)
class ViewFacts:
    """What a table's view guarantees to the set-based path (fastpath.Known)."""

    json_built: tuple[str, ...] = ()   # columns built by json_object(): valid, flat JSON
    micros: tuple[str, ...] = ()       # time columns with a micros_column beside them
    agent_ids: tuple[str, ...] = ()    # agent columns with an agent_id_column beside them


@dataclass
class Applied:
    """What a mapping does to one opened file: SQL to run on its connection, and the names."""

    statements: list[str]
    views: dict[str, str]            # documented legacy table -> source table
    bodies: dict[str, str]           # documented legacy table -> the view's SELECT
    ignored: dict[str, list[str]]    # documented legacy table -> source columns not imported
    facts: dict[str, ViewFacts]      # documented legacy table -> what its view guarantees


def apply_sql(mapping: Mapping, columns: dict[str, list[str]]) -> Applied:
    """The temp objects presenting the mapped tables in the documented layout, after checking
    every source table and column against the file (``columns``: table -> its columns)."""
    statements: list[str] = []
    views: dict[str, str] = {}
    bodies: dict[str, str] = {}
    ignored: dict[str, list[str]] = {}
    facts: dict[str, ViewFacts] = {}
    for table, spec in mapping.tables.items():
        if table not in columns:
            raise MappingError(f"mapping: source table {table!r} is not in the file (tables: "
                               f"{', '.join(sorted(columns)) or 'none'})")
        for field, col in spec.columns.items():
            sources = col.source if isinstance(col.source, list) else [col.source] if col.source else []
            for src in sources:
                if src not in columns[table]:
                    raise MappingError(f"mapping: {table}.{field}: source column {src!r} is not in table {table!r} "
                                       f"(columns: {', '.join(columns[table])})")
        if spec.key is not None and spec.key not in columns[table]:
            raise MappingError(f"mapping: {table}.key: column {spec.key!r} is not in table {table!r}")
    fleet = mapping.fleet_tables()
    for table, spec in fleet.items():
        legacy = TARGETS[spec.target].legacy
        if legacy in columns and legacy != table:
            raise MappingError(f"mapping: table {table!r} is mapped onto {spec.target}, but the file also has the "
                               f"documented table {legacy!r} for it: map {legacy!r} instead, or rename one of them")
    agents = next(((t, s) for t, s in fleet.items() if s.target == "fleet.agents"), None)
    key_col = None
    if agents is not None and agents[1].key is not None:
        table, spec = agents
        key_col = spec.key
        name = _expr(spec.columns["name"], table, None)
        statements.append(f"CREATE TEMP TABLE IF NOT EXISTS {KEY_TABLE} (key TEXT PRIMARY KEY, name, id INTEGER)")
        statements.append(f"DELETE FROM temp.{KEY_TABLE}")  # noqa: S608 - a constant name
        statements.append(f"INSERT OR IGNORE INTO temp.{KEY_TABLE} (key, name) SELECT CAST(s.{_q(key_col)} AS TEXT), {name} "  # noqa: S608
                          f"FROM main.{_q(table)} AS s WHERE s.{_q(key_col)} IS NOT NULL")
    for table, spec in fleet.items():
        target = TARGETS[spec.target]
        by_legacy = {target.fields[f]: c for f, c in spec.columns.items()}
        field_of = {legacy: f for f, legacy in target.fields.items()}
        exprs = [f"{_expr(by_legacy[col], agents[0] if agents else table, key_col, field_of[col])} AS {_q(col)}"
                 if col in by_legacy else f"NULL AS {_q(col)}" for col in target.fields.values()]
        timed = {col: e for col, c in by_legacy.items() if (e := _micros_expr(c)) is not None}
        exprs += [f"{e} AS {_q(micros_column(col))}" for col, e in timed.items()]
        keyed = {col: field_of[col] for col, c in by_legacy.items() if c.convert == "agent_key"}
        exprs += [f"{_q('k_' + f)}.id AS {_q(agent_id_column(col))}" for col, f in keyed.items()]
        joins = "".join(f" LEFT JOIN temp.{KEY_TABLE} AS {_q('k_' + f)} ON {_q('k_' + f)}.key = CAST(s.{_q(str(c.source))} AS TEXT)"
                        for f, c in spec.columns.items() if c.convert == "agent_key")
        body = f"SELECT s.rowid AS rowid, {', '.join(exprs)} FROM main.{_q(table)} AS s{joins}"  # noqa: S608 - quoted
        statements.append(f"DROP VIEW IF EXISTS temp.{_q(target.legacy)}")
        statements.append(f"CREATE TEMP VIEW {_q(target.legacy)} AS {body}")
        bodies[target.legacy] = body
        views[target.legacy] = table
        used = {s for c in spec.columns.values()
                for s in (c.source if isinstance(c.source, list) else [c.source] if c.source else [])}
        ignored[target.legacy] = [c for c in columns[table] if c not in used and c != spec.key]
        facts[target.legacy] = ViewFacts(
            json_built=tuple(col for col, c in by_legacy.items() if c.convert == "json_object"),
            micros=tuple(timed), agent_ids=tuple(keyed))
    return Applied(statements, views, bodies, ignored, facts)
