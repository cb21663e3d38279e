"""fleet.yaml: a fleet declared as code, read and checked before anything touches the registry.

The file comes from whoever can commit to the repository that holds it, so it is read as
untrusted input: at most 1 MiB, YAML without aliases (a "billion laughs" file expands a few
hundred bytes into gigabytes once walked), at most 32 levels deep, no duplicate keys (PyYAML
would keep the last one silently, so a second entry for an agent would win unseen), no unknown
keys (a typo such as ``capabilites`` would otherwise be dropped), and every value of the type
and range the registry takes. The first problem ends the read with one line naming the agent
and the field. PyYAML's safe loader does the parsing (it builds no Python objects from tags).

Alert routes name channels (``log``, ``webhook``, ``email``); where they deliver (URLs,
addresses, passwords) comes from the environment only, never from the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents_pipeline.core import thresholds
from agents_pipeline.core.errors import ValidationError
from agents_pipeline.core.tasks import label

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_AGENTS = 5000
MAX_PERIOD_S = 30 * 86400.0
VERSION = 1
CHANNELS = ("log", "webhook", "email")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Stricter than the registry (any text without control characters): a name in a file is also a
# database login's suffix, a key-value namespace ("NAME/") and a word in alerts.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
AGENT_KEYS = ("name", "type", "host", "period_s", "grace_s", "capabilities", "process", "thresholds",
              "silence_windows", "alert_routes")
PROCESS_KEYS = ("pid", "pidfile", "match")
WINDOW_KEYS = ("days", "start", "end")


class FleetFileError(ValidationError):
    """The file cannot be used; the message names the file, the agent and the field."""


@dataclass(frozen=True)
class AgentSpec:
    """One agent as the file declares it (and as the registry is compared against it)."""

    name: str
    type: str = "generic"
    host: str | None = None
    period_s: float = 60.0
    grace_s: float = 30.0
    capabilities: tuple[str, ...] = ()
    process: tuple[str, Any] | None = None          # ("match", "regex") / ("pidfile", path) / ("pid", n)
    thresholds: dict[str, Any] | None = None
    silence_windows: tuple[dict[str, Any], ...] = ()
    alert_routes: tuple[str, ...] = ()              # empty: every channel configured

    def as_dict(self) -> dict[str, Any]:
        """The file's shape (defaults left out), for `fleet export` and JSON output."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.host is not None:
            out["host"] = self.host
        out["period_s"] = _plain_number(self.period_s)
        out["grace_s"] = _plain_number(self.grace_s)
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        if self.process is not None:
            out["process"] = {self.process[0]: self.process[1]}
        return {**out, **self.config_keys()}

    def config_keys(self) -> dict[str, Any]:
        """The keys of ``fleet.agents.config`` the file owns, those it sets."""
        out: dict[str, Any] = {}
        if self.thresholds is not None:
            out["thresholds"] = self.thresholds
        if self.silence_windows:
            out["silence_windows"] = [dict(w) for w in self.silence_windows]
        if self.alert_routes:
            out["alert_routes"] = list(self.alert_routes)
        return out


@dataclass(frozen=True)
class FleetFile:
    path: str
    agents: dict[str, AgentSpec] = field(default_factory=dict)


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing aliases, deep nesting and duplicate keys."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise FleetFileError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in a fleet file")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise FleetFileError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise FleetFileError(f"line {key_node.start_mark.line + 1}: keys must be text, got {key!r}")
            if key in seen:
                raise FleetFileError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def read_text(path: str | Path) -> str:
    """The file's text, refusing what is not a regular file, larger than MAX_BYTES, or not UTF-8."""
    p = Path(path)
    if not p.exists():
        raise FleetFileError(f"{p}: no such file")
    if not p.is_file():
        raise FleetFileError(f"{p}: not a regular file")
    with p.open("rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise FleetFileError(f"{p}: larger than {MAX_BYTES} bytes; a fleet file is small")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FleetFileError(f"{p}: not valid UTF-8 (byte {exc.start})") from None


def load(path: str | Path) -> FleetFile:
    """Reads and checks a fleet file; FleetFileError names the first problem."""
    return parse(read_text(path), str(path))


def parse(text: str, where: str = "fleet file") -> FleetFile:
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise FleetFileError(f"{where}: larger than {MAX_BYTES} bytes; a fleet file is small")
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except FleetFileError as exc:
        raise FleetFileError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise FleetFileError(f"{where}: {at}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise FleetFileError(f"{where}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise FleetFileError(f"{where}: must be a mapping with 'version' and 'agents', got {type(doc).__name__}")
    _no_unknown(doc, ("version", "agents"), where)
    if doc.get("version") != VERSION:
        raise FleetFileError(f"{where}: 'version' must be {VERSION}, got {doc.get('version')!r}")
    items = doc.get("agents")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise FleetFileError(f"{where}: 'agents' must be a list of agents, got {type(items).__name__}")
    if len(items) > MAX_AGENTS:
        raise FleetFileError(f"{where}: {len(items)} agents, more than {MAX_AGENTS}")
    agents: dict[str, AgentSpec] = {}
    for i, item in enumerate(items):
        spec = _agent(item, f"{where}: agents[{i}]")
        if spec.name in agents:
            raise FleetFileError(f"{where}: agent {spec.name!r} is declared twice")
        agents[spec.name] = spec
    return FleetFile(where, agents)


def _no_unknown(mapping: dict, known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in mapping if k not in known]
    if unknown:
        raise FleetFileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})")


def _text(value: Any, where: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise FleetFileError(f"{where} must be text, got {type(value).__name__}")
    if not value.strip() or len(value) > max_len or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FleetFileError(f"{where} must be 1 to {max_len} characters without control characters")
    return value


def _seconds(value: Any, where: str, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FleetFileError(f"{where} must be a number of seconds, got {value!r}")
    if not low <= value <= MAX_PERIOD_S:
        raise FleetFileError(f"{where} must be {low:g} to {MAX_PERIOD_S:g} s, got {value!r}")
    return float(value)


def _agent(item: Any, where: str) -> AgentSpec:
    if not isinstance(item, dict):
        raise FleetFileError(f"{where} must be a mapping (name, type, period_s, ...), got {type(item).__name__}")
    raw_name = item.get("name")
    if not isinstance(raw_name, str) or not NAME.fullmatch(raw_name):
        raise FleetFileError(f"{where}.name must be 1 to 200 letters, digits or _ . : @ - starting with a letter "
                             f"or digit, got {raw_name!r}")
    where = f"{where.rsplit(': ', 1)[0]}: agent {raw_name!r}"
    _no_unknown(item, AGENT_KEYS, where)
    kwargs: dict[str, Any] = {"name": raw_name}
    if "type" in item:
        kwargs["type"] = _text(item["type"], f"{where}: type", 100)
    if item.get("host") is not None:
        kwargs["host"] = _text(item["host"], f"{where}: host", 255)
    if "period_s" in item:
        kwargs["period_s"] = _seconds(item["period_s"], f"{where}: period_s", 1)
    if "grace_s" in item:
        kwargs["grace_s"] = _seconds(item["grace_s"], f"{where}: grace_s", 0)
    caps = item.get("capabilities") or []
    if not isinstance(caps, list):
        raise FleetFileError(f"{where}: capabilities must be a list, got {type(caps).__name__}")
    if len(caps) > 100:
        raise FleetFileError(f"{where}: at most 100 capabilities, got {len(caps)}")
    try:
        kwargs["capabilities"] = tuple(sorted({label(c, "capability") for c in caps}))
    except ValidationError as exc:
        raise FleetFileError(f"{where}: {exc}") from None
    if item.get("process") is not None:
        kwargs["process"] = _process(item["process"], f"{where}: process")
    if item.get("thresholds") is not None:
        try:
            thresholds.validate_layer(item["thresholds"], agent=True)
        except ValidationError as exc:
            raise FleetFileError(f"{where}: {exc}") from None
        kwargs["thresholds"] = item["thresholds"]
    windows = item.get("silence_windows") or []
    if not isinstance(windows, list) or len(windows) > 50:
        raise FleetFileError(f"{where}: silence_windows must be a list of at most 50 windows")
    kwargs["silence_windows"] = tuple(_window(w, f"{where}: silence_windows[{i}]") for i, w in enumerate(windows))
    routes = item.get("alert_routes") or []
    if not isinstance(routes, list) or any(r not in CHANNELS for r in routes):
        raise FleetFileError(f"{where}: alert_routes must be a list of channel names ({', '.join(CHANNELS)}); "
                             "where they deliver comes from the environment, got " f"{routes!r}"[:300])
    kwargs["alert_routes"] = tuple(sorted(set(routes)))
    return AgentSpec(**kwargs)


def _process(value: Any, where: str) -> tuple[str, Any]:
    if not isinstance(value, dict) or len(value) != 1:
        raise FleetFileError(f"{where} must be one of {{match: REGEX}}, {{pidfile: PATH}} or {{pid: N}}")
    key, val = next(iter(value.items()))
    _no_unknown(value, PROCESS_KEYS, where)
    if key == "pid":
        if isinstance(val, bool) or not isinstance(val, int) or not 0 < val < 2**31:
            raise FleetFileError(f"{where}.pid must be a positive whole number, got {val!r}")
        return key, val
    text = _text(val, f"{where}.{key}", 4096 if key == "pidfile" else 1000)
    if key == "match":
        try:
            re.compile(text)
        except re.error as exc:
            raise FleetFileError(f"{where}.match is not a valid regular expression: {exc}") from None
    return key, text


def _window(value: Any, where: str) -> dict[str, Any]:
    """A weekly maintenance window in UTC: ``{days: [sat, sun], start: "02:00", end: "04:00"}``."""
    if not isinstance(value, dict):
        raise FleetFileError(f"{where} must be a mapping with days, start and end")
    _no_unknown(value, WINDOW_KEYS, where)
    days = value.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise FleetFileError(f"{where}.days must be a non-empty list of {', '.join(DAYS)}")
    out: dict[str, Any] = {"days": [d for d in DAYS if d in days]}
    for key in ("start", "end"):
        raw = value.get(key)
        if isinstance(raw, int) and not isinstance(raw, bool):
            # YAML 1.1 reads an unquoted 02:00 as the number 120 (base 60).
            raise FleetFileError(f"{where}.{key}: quote the time, e.g. \"02:00\" (unquoted, YAML reads it as a number)")
        if not isinstance(raw, str) or not _TIME.fullmatch(raw):
            raise FleetFileError(f"{where}.{key} must be a time \"HH:MM\" (UTC), got {raw!r}")
        out[key] = raw
    if out["start"] == out["end"]:
        raise FleetFileError(f"{where}: start and end are the same time")
    return out


def dump(agents: list[AgentSpec]) -> str:
    """A fleet file declaring ``agents`` (what `fleet export` writes)."""
    doc = {"version": VERSION, "agents": [a.as_dict() for a in sorted(agents, key=lambda a: a.name)]}
    header = ("# Fleet as code: `agents-pipeline fleet plan FILE`, then `fleet apply FILE` (docs/fleet.md).\n"
              "# Alert routes name channels; their URLs and secrets come from the environment.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
