"""Fixtures of the ui tests: a Dagster instance stored in PostgreSQL on the test cluster."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from agents_pipeline_tests import pg


@pytest.fixture
def pg_instance(dagster_storage_url: str) -> Iterator[dg.DagsterInstance]:
    # Keep the +psycopg2 scheme: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
    overrides = {"storage": {"postgres": {"postgres_url": dagster_storage_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


@pytest.fixture(scope="package")
def dagster_dev(pg_cluster, pg_template, tmp_path_factory):
    """One `dagster dev` for the package's webserver tests (it takes ~20 s to start here)."""
    from agents_pipeline_tests.ui.dagster_dev import running_dagster_dev

    app = pg.fresh_database(pg_cluster, pg_template)
    _host_samples_for_the_last_hours(pg_cluster.url(app))
    conn = pg.admin_connect(pg_cluster)
    storage = f"dagster_{pg.uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{storage}"')
    conn.close()
    try:
        with running_dagster_dev(pg_cluster.url(app), pg_cluster.url(storage),
                                 tmp_path_factory.mktemp("dagster-home")) as dev:
            yield dev
    finally:
        pg.drop_database(pg_cluster, app)
        pg.drop_database(pg_cluster, storage)


def _host_samples_for_the_last_hours(url: str) -> None:
    """A running system has samples: without them the hourly rollup schedule, when the clock
    passes the hour during the tests, fails its run ("no raw samples") and readiness turns red.
    One host sample in the previous hour and one now, as the sampler would have written."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from agents_pipeline.defs.performance.store import insert_samples

    engine = sa.create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for at in (now - timedelta(hours=1), now):
            insert_samples(conn, "ui-test-host", at, [(None, "cpu_percent", 1.0)])
    engine.dispose()
