"""What the LangSmith sync reads from the environment, parsed and checked in one place.

Only the API key is a secret; it reaches the code through ``dg.EnvVar`` on the resource and
never through run config. The rest (endpoint, projects, project -> agent mapping) are plain
settings with defaults, so a fleet without LangSmith runs with nothing set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agents_pipeline.core.errors import ConfigurationError

API_KEY = "LANGSMITH_API_KEY"
ENDPOINT = "LANGSMITH_ENDPOINT"
PROJECTS = "LANGSMITH_PROJECTS"            # comma-separated projects to pull
PROJECT = "LANGSMITH_PROJECT"              # LangSmith's own single-project variable, a fallback
PROJECT_AGENTS = "LANGSMITH_PROJECT_AGENTS"  # "project=agent,project2=agent2"
PUSH_PROJECT = "LANGSMITH_PUSH_PROJECT"    # where local conversations go

DEFAULT_ENDPOINT = "https://api.smith.langchain.com"
DEFAULT_PUSH_PROJECT = "agents-pipeline"
PAGE_SIZE = 100  # what hosted LangSmith serves per /runs/query page (and its maximum)

# Metadata keys and tag prefix an agent sets on its runs to claim them (first match wins).
AGENT_METADATA_KEYS = ("agents_pipeline_agent", "agent", "agent_name")
AGENT_TAG_PREFIX = "agent:"

_PROJECT_NAME = re.compile(r"^[^\x00-\x1f]{1,200}$")


def parse_projects(raw: str | None) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: order kept, blanks and repeats dropped."""
    seen: list[str] = []
    for part in (raw or "").split(","):
        name = part.strip()
        if not name:
            continue
        if not _PROJECT_NAME.match(name):
            raise ConfigurationError(f"{PROJECTS}: project name {name[:40]!r} is empty, too long or has control characters")
        if name not in seen:
            seen.append(name)
    return tuple(seen)


def parse_project_agents(raw: str | None) -> dict[str, str]:
    """``"proj-a=agent-a, proj-b=agent-b"`` -> mapping; a malformed pair is named in the error."""
    mapping: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        project, sep, agent = part.partition("=")
        if not sep or not project.strip() or not agent.strip():
            raise ConfigurationError(f"{PROJECT_AGENTS}: {part.strip()[:80]!r} is not of the form project=agent")
        mapping[project.strip()] = agent.strip()
    return mapping


@dataclass(frozen=True)
class SyncSettings:
    """How one sync behaves; the resource builds it from its fields."""

    projects: tuple[str, ...]
    project_agents: dict[str, str] = field(default_factory=dict)
    # Re-read this far behind the cursor every sync: longer than the longest run, so that a
    # run posted while pending and patched later, or a late child, is seen again.
    lookback: timedelta = timedelta(hours=2)
    # A first sync (no cursor yet) starts this far back; LangSmith keeps base traces 14 days.
    initial_window: timedelta = timedelta(days=1)
    # One transaction (rows + cursor) covers at most this much time, so a long outage is
    # caught up in bounded transactions that each leave a correct cursor behind.
    slice_length: timedelta = timedelta(hours=6)
    # Runs still pending after this long are no longer re-fetched (their patch was lost).
    pending_max_age: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        for name in ("lookback", "initial_window", "slice_length", "pending_max_age"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"LangSmith sync setting {name} must be positive")


def parse_instant(text: str, name: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is UTC, a bare date its midnight."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name} {text!r} is not an ISO 8601 date or time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
