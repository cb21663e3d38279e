"""Typed errors: every failure an agent or operator sees names its cause in one line."""


class AgentsPipelineError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(AgentsPipelineError):
    """A setting is missing or malformed (environment variable, URL, path)."""


class ValidationError(AgentsPipelineError):
    """Input was refused before anything was stored (NUL, bad UTF-8, too large, bad kind)."""


class NotFoundError(AgentsPipelineError):
    """The named agent, key or request does not exist."""


class AuthError(AgentsPipelineError):
    """The token does not belong to the named agent, or the login lacks the right."""


class ConflictError(AgentsPipelineError):
    """A compare-and-set lost: the stored version is not the expected one."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class DatabaseUnavailableError(AgentsPipelineError):
    """The database stayed unreachable for the whole retry window."""


class DatabaseError(AgentsPipelineError):
    """Any other database failure, with the server's message (never the connection URL)."""


class LockedError(AgentsPipelineError):
    """A lock stayed taken past its bounded wait; the message names the holder where known."""


class RateLimitedError(AgentsPipelineError):
    """The server refused the call under the agent's rate limit; retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LeaseLostError(NotFoundError):
    """The task's attempt is no longer this agent's: its lease ran out and another agent claimed it,
    or its agent was marked down and the task released. Its result must not be reported; the
    task runs again (or is dead-lettered) under another attempt."""


class VerificationFailed(AgentsPipelineError):
    """The work ran, and checking its result found a difference (a restore that does not match
    its backup): the command exits 1, not 2 (it did not fail to run)."""
