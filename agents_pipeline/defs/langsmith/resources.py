"""The LangSmith resource: the API key through ``dg.EnvVar``, the rest plain settings.

With no key configured the resource says so (``configured`` is False) and the assets report
it in their metadata instead of failing. Dagster refuses to start a run when an ``EnvVar``
points at an unset variable, so ``langsmith_resource()`` passes the EnvVar only when the
variable is set when the code location loads (it checks presence, never reads the value);
set the key, then reload the code location.

The key and the endpoint in use are read from the environment when used (``credentials``);
the sync can be launched from the Launchpad, and an ``endpoint`` set there while the key still
comes from ``{env: LANGSMITH_API_KEY}`` would hand the key to that host, so a value that
differs from the environment is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import dagster as dg
from langsmith import Client
from pydantic import Field

from agents_pipeline.defs.langsmith import settings as ls_settings
from agents_pipeline.defs.langsmith.client import (
    Redactor,
    RetryStats,
    close_client,
    make_client,
    redacted_logs,
)
from agents_pipeline.defs.langsmith.settings import SyncSettings
from agents_pipeline.defs.langsmith.source import ListRunsSource, RunSource
from agents_pipeline.platform.resources import refuse_override


class LangSmithResource(dg.ConfigurableResource):
    """Where LangSmith is and what to sync. Only ``api_key`` is secret (an EnvVar, never shown)."""

    api_key: str | None = Field(default=None, description=f"LangSmith API key (EnvVar {ls_settings.API_KEY}); unset: sync off")
    endpoint: str = Field(default=ls_settings.DEFAULT_ENDPOINT, description="LangSmith API URL (LANGSMITH_ENDPOINT)")
    projects: str = Field(default="", description="comma-separated projects to pull (LANGSMITH_PROJECTS)")
    project_agents: str = Field(default="", description="project=agent pairs for runs that name no agent")
    push_project: str = Field(default=ls_settings.DEFAULT_PUSH_PROJECT, description="project local conversations go to")
    lookback_minutes: int = Field(default=120, ge=1, description="re-read window behind the cursor; longer than the longest run")
    initial_window_hours: int = Field(default=24, ge=1, le=24 * 400, description="how far back a first sync starts")
    slice_hours: int = Field(default=6, ge=1, description="longest time span one transaction (rows + cursor) covers")
    pending_max_age_hours: int = Field(default=168, ge=1, description="stop re-fetching runs pending longer than this")
    max_retries: int = Field(default=5, ge=0, le=20, description="retries per request on 429/5xx/connection errors")
    backoff_factor: float = Field(default=0.5, ge=0, description="exponential backoff base (s) between retries")
    retry_after_max_s: int = Field(default=120, ge=0, description="cap on a Retry-After the server asks for")
    timeout_s: float = Field(default=60.0, gt=0, description="read timeout per request")

    def credentials(self) -> tuple[str | None, str]:
        """The environment's key and endpoint; ConfigurationError if a field here says otherwise."""
        key = os.environ.get(ls_settings.API_KEY) or None
        endpoint = os.environ.get(ls_settings.ENDPOINT) or ls_settings.DEFAULT_ENDPOINT
        refuse_override("langsmith", "api_key", self.api_key, key, ls_settings.API_KEY)
        refuse_override("langsmith", "endpoint", self.endpoint, endpoint, ls_settings.ENDPOINT,
                        default=ls_settings.DEFAULT_ENDPOINT)
        return key, endpoint

    @property
    def configured(self) -> bool:
        return bool(self.credentials()[0])

    def sync_settings(self) -> SyncSettings:
        return SyncSettings(
            projects=ls_settings.parse_projects(self.projects),
            project_agents=ls_settings.parse_project_agents(self.project_agents),
            lookback=timedelta(minutes=self.lookback_minutes),
            initial_window=timedelta(hours=self.initial_window_hours),
            slice_length=timedelta(hours=self.slice_hours),
            pending_max_age=timedelta(hours=self.pending_max_age_hours),
        )

    def redactor(self) -> Redactor:
        return Redactor(self.credentials()[0])

    @contextmanager
    def session(self, ingest_errors: list[BaseException] | None = None) -> Iterator[tuple[Client, RetryStats]]:
        """A client for one step, with the langsmith loggers scrubbed while it is in use."""
        api_key, endpoint = self.credentials()
        if not api_key:
            raise RuntimeError(f"{ls_settings.API_KEY} is not set")
        with redacted_logs(Redactor(api_key)):
            client, stats = make_client(
                api_key=api_key, endpoint=endpoint, max_retries=self.max_retries,
                backoff_factor=self.backoff_factor, retry_after_max=self.retry_after_max_s,
                timeout_s=self.timeout_s,
                on_ingest_error=ingest_errors.append if ingest_errors is not None else None)
            try:
                yield client, stats
            finally:
                close_client(client)

    @staticmethod
    def source(client: Client) -> RunSource:
        """The one place that picks the query implementation (see source.py for the v2 move)."""
        return ListRunsSource(client)


def _env(name: str, fallback: str | None = None) -> dg.EnvVar | None:
    if os.environ.get(name):
        return dg.EnvVar(name)
    if fallback and os.environ.get(fallback):
        return dg.EnvVar(fallback)
    return None


def langsmith_resource() -> LangSmithResource:
    fields = {
        "api_key": _env(ls_settings.API_KEY),
        "endpoint": _env(ls_settings.ENDPOINT),
        "projects": _env(ls_settings.PROJECTS, ls_settings.PROJECT),
        "project_agents": _env(ls_settings.PROJECT_AGENTS),
        "push_project": _env(ls_settings.PUSH_PROJECT),
    }
    return LangSmithResource(**{k: v for k, v in fields.items() if v is not None})


def resource_from_environment() -> LangSmithResource:
    """The same settings for the CLI, read now (outside Dagster there is no EnvVar to resolve)."""
    values = {
        "api_key": os.environ.get(ls_settings.API_KEY) or None,
        "endpoint": os.environ.get(ls_settings.ENDPOINT),
        "projects": os.environ.get(ls_settings.PROJECTS) or os.environ.get(ls_settings.PROJECT),
        "project_agents": os.environ.get(ls_settings.PROJECT_AGENTS),
        "push_project": os.environ.get(ls_settings.PUSH_PROJECT),
    }
    return LangSmithResource(**{k: v for k, v in values.items() if v})


@dg.definitions
def resources() -> dg.Definitions:
    """Binds ``langsmith`` for the sync, the push and their checks."""
    return dg.Definitions(resources={"langsmith": langsmith_resource()})
