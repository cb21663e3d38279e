"""The database roles of the product and what each may do, in one place.

The roles are created by ``sql/0010_roles.sql``; their names carry the prefix in
AGENTS_PIPELINE_ROLE_PREFIX because roles are global to a PostgreSQL server, so two
deployments (staging, production) on one server need different names. This module only
names them and lists the agent's allow-list. It sits in core beside the migrations that
create the roles and the SharedState whose calls the allow-list names, and so below every
domain that reads it: the security audit and grant command, and the readiness checks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.migrations import ROLE_PREFIX_ENV

DEFAULT_PREFIX = "agents_pipeline"

# Exactly the fleet functions SharedState calls. The agent login may execute these and
# nothing else; sql/0010_roles.sql grants the same list (keep the two in step).
AGENT_FUNCTIONS = (
    "record_heartbeats", "kv_get", "kv_set", "send_message", "claim_messages", "ack_message",
    "record_conversation", "report_metrics", "submit_help_request", "get_help_request",
    "ensure_current_partitions", "submit_task", "submit_tasks", "claim_tasks", "complete_task", "complete_tasks", "complete_and_claim", "fail_task",
    "extend_task",
    "get_task", "release_task", "broadcast_message", "list_peers",
)

# The HTTP API server's login may execute the agent functions, the pings it authenticates by
# key, and the two read-only operator views that answer only to an operator API key (sql/0018),
# nothing else (sql/functions/apply_security.sql grants the same list). It is never an operator,
# so every request it serves carries a ping key, an agent token or an operator key.
API_FUNCTIONS = (*AGENT_FUNCTIONS, "record_pings", "api_status", "api_alerts")


@dataclass(frozen=True)
class Roles:
    """Names of the owner (holds the schema), pipeline (Dagster jobs), agent and API (logins) roles."""

    prefix: str

    @property
    def owner(self) -> str:
        return f"{self.prefix}_owner"

    @property
    def pipeline(self) -> str:
        return f"{self.prefix}_pipeline"

    @property
    def agent(self) -> str:
        return f"{self.prefix}_agent"

    @property
    def api(self) -> str:
        """The HTTP API server's login (agents_pipeline.api): API_FUNCTIONS and nothing else."""
        return f"{self.prefix}_api"

    @property
    def signaller(self) -> str:
        """Member of pg_signal_backend; owns fleet.end_agent_session and nothing else."""
        return f"{self.prefix}_signaller"


def roles(prefix: str | None = None) -> Roles:
    """The role names for ``prefix`` (default: AGENTS_PIPELINE_ROLE_PREFIX, else agents_pipeline).

    Checked the same way the migration runner checks it, so a name that reaches SQL as an
    identifier is always a plain lower-case one.
    """
    value = prefix if prefix is not None else os.environ.get(ROLE_PREFIX_ENV, DEFAULT_PREFIX)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,30}", value):
        raise ConfigurationError(f"{ROLE_PREFIX_ENV} must be a lower-case SQL identifier, got {value!r}")
    return Roles(value)
