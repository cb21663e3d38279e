"""How a command reaches the shared-state database: the URL ``resolve_url`` picks (the variable,
else the project-local cluster), through the same engine rules as the Dagster resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that use it
    import sqlalchemy as sa

    from agents_pipeline.core.connection import Database


def engine(command: str, pool_size: int = 1) -> sa.Engine:
    """A SQLAlchemy engine named ``agents_pipeline:<command>`` in pg_stat_activity."""
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.platform.engine import create_engine

    return create_engine(resolve_url(), application_name=f"agents_pipeline:{command}", pool_size=pool_size)


def read_engine(command: str, pool_size: int = 1) -> sa.Engine:
    """As ``engine``, on the display reads' replica when AGENTS_PIPELINE_READ_DATABASE_URL is set
    (core/replica.py says which reads may go there), else on the shared-state database."""
    from agents_pipeline.core.replica import resolve_read_url
    from agents_pipeline.platform.engine import create_engine

    return create_engine(resolve_read_url(), application_name=f"agents_pipeline:{command}", pool_size=pool_size)


def read_database(command: str, maxconn: int = 1) -> Database:
    """As ``database``, on the display reads' replica when one is configured."""
    from agents_pipeline.core.connection import Database
    from agents_pipeline.core.replica import resolve_read_url

    return Database(resolve_read_url(), maxconn=maxconn, application_name=f"agents_pipeline:{command}")


def database(command: str, maxconn: int = 1) -> Database:
    """The agent-side psycopg2 pool, for commands that call core functions."""
    from agents_pipeline.core.connection import Database
    from agents_pipeline.core.shared_state import resolve_url

    return Database(resolve_url(), maxconn=maxconn, application_name=f"agents_pipeline:{command}")
