"""Fixtures of the langsmith tests: a local LangSmith server, an engine, sync settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agents_pipeline.defs.langsmith.client import Redactor, close_client, make_client
from agents_pipeline.defs.langsmith.settings import SyncSettings
from agents_pipeline.defs.langsmith.source import ListRunsSource
from agents_pipeline.defs.langsmith.sync import ProjectResult, sync_project
from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith

PROJECT = "fleet-prod"


@pytest.fixture
def fake() -> Iterator[FakeLangSmith]:
    server = FakeLangSmith().start()
    yield server
    server.stop()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings() -> SyncSettings:
    return SyncSettings(projects=(PROJECT,), lookback=timedelta(hours=2), initial_window=timedelta(days=1))


class Syncer:
    """Runs one sync against the fake with the real client, as the asset does."""

    def __init__(self, fake: FakeLangSmith, engine: sa.Engine, settings: SyncSettings) -> None:
        self.fake, self.engine, self.settings = fake, engine, settings
        self.retry_counts: dict[str, int] = {}

    def __call__(self, now: datetime, *, project: str = PROJECT, window=None, max_retries: int = 2,
                 settings: SyncSettings | None = None) -> ProjectResult:
        client, stats = make_client(api_key=self.fake.api_key, endpoint=self.fake.url,
                                    max_retries=max_retries, backoff_factor=0.01)
        try:
            result = sync_project(self.engine, ListRunsSource(client), project, settings or self.settings,
                                  redact=Redactor(self.fake.api_key), now=now, window=window)
        finally:
            close_client(client)
        self.retry_counts = dict(stats.counts)
        return result


@pytest.fixture
def syncer(fake: FakeLangSmith, engine: sa.Engine, settings: SyncSettings) -> Syncer:
    return Syncer(fake, engine, settings)
