"""A primary of its own and a streaming standby of it (agents_pipeline_tests/replica.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline_tests import pg, replica


@pytest.fixture(scope="module")
def primary() -> Iterator[LocalCluster]:
    """A migrated primary for this module only (the tests pause replay, kill and promote)."""
    with pg.running_cluster(prefix="ap-primary-") as cluster:
        conn = psycopg2.connect(**connect_kwargs(cluster.url()))
        migrations.migrate(conn)
        conn.close()
        yield cluster


@pytest.fixture(scope="module")
def standby(primary: LocalCluster) -> Iterator[LocalCluster]:
    with replica.running_standby(primary) as cluster:
        yield cluster
