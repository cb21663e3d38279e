"""Fixtures of the heartbeats and alerts tests: a SQLAlchemy engine on the per-test database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url, pool_size=4, max_overflow=4)
    yield eng
    eng.dispose()


@pytest.fixture
def t0(engine: sa.Engine) -> datetime:
    """A reference time a little after the server's now, so registrations happen 'before' it."""
    with engine.begin() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
    return now.astimezone(UTC).replace(microsecond=0)
