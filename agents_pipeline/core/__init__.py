"""The ground floor: settings, connections, migrations, the local cluster and SharedState.

Nothing here imports Dagster, SQLAlchemy or pandas, so an agent or a shell heartbeat
starts in well under the 300 ms budget.
"""

from agents_pipeline.core.errors import (
    AgentsPipelineError,
    AuthError,
    ConfigurationError,
    DatabaseUnavailableError,
    LeaseLostError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.core.tasks import Task

__all__ = [
    "AgentsPipelineError",
    "AuthError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "LeaseLostError",
    "NotFoundError",
    "RateLimitedError",
    "SharedState",
    "Task",
    "ValidationError",
]
