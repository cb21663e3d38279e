"""Fixtures of the heartbeats and alerts tests: a SQLAlchemy engine on the per-test database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa


@pytest.fixture
def t0(engine: sa.Engine) -> datetime:
    """A reference time a little after the server's now, so registrations happen 'before' it."""
    with engine.begin() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
    return now.astimezone(UTC).replace(microsecond=0)
