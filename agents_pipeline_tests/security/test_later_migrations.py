"""Objects that later migrations create are covered: default privileges for the pipeline role,
no EXECUTE for PUBLIC, and the pipeline login can check (not apply) the schema."""

import uuid
from collections.abc import Iterator

import dagster as dg
import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.roles import AGENT_FUNCTIONS
from agents_pipeline.defs.security.audit import audit
from agents_pipeline_tests.security.conftest import role_url


@pytest.fixture
def pipeline_url(secured_url, pg_cluster, names, database) -> Iterator[str]:
    login = f"ap_test_dagster_{uuid.uuid4().hex[:8]}"
    database.transaction(lambda cur: cur.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE "{names.pipeline}"'))
    yield role_url(secured_url, pg_cluster, login)
    database.transaction(lambda cur: cur.execute(f'DROP ROLE "{login}"'))


def _can(url: str, sql: str) -> bool:
    db = Database(url, maxconn=1, retry_window=1)
    try:
        db.transaction(lambda cur: cur.execute(sql))
        return True
    except Exception:
        return False
    finally:
        db.close()


def test_a_later_table_is_open_to_the_pipeline_role_only(database, pipeline_url, agent_url, names):
    """Created by the migrating login (as later migrations are), before apply_security runs."""
    database.transaction(lambda cur: cur.execute(
        "CREATE TABLE fleet.later_table (id bigint GENERATED ALWAYS AS IDENTITY, note text)"))
    assert _can(pipeline_url, "INSERT INTO fleet.later_table (note) VALUES ('x')")
    assert _can(pipeline_url, "UPDATE fleet.later_table SET note = 'y'")
    assert _can(pipeline_url, "DELETE FROM fleet.later_table")
    assert not _can(agent_url, "SELECT * FROM fleet.later_table")
    assert not _can(pipeline_url, "DROP TABLE fleet.later_table")


def test_objects_made_as_the_owner_role_need_nothing_more(database, pipeline_url, agent_url, names):
    """A migration that runs as the owner role (SET LOCAL ROLE) gets ownership right and no
    PUBLIC EXECUTE on its functions from the default privileges alone."""
    def work(cur):
        cur.execute(f'SET LOCAL ROLE "{names.owner}"')
        cur.execute("CREATE TABLE fleet.owned_later (x int)")
        cur.execute("CREATE FUNCTION fleet.pipeline_only() RETURNS int LANGUAGE sql AS 'SELECT 1'")

    database.transaction(work)
    assert audit(database, names) == []
    assert _can(pipeline_url, "SELECT fleet.pipeline_only()")
    assert _can(pipeline_url, "INSERT INTO fleet.owned_later VALUES (1)")
    assert not _can(agent_url, "SELECT fleet.pipeline_only()")


def test_the_pipeline_login_can_check_but_not_apply_the_schema(pipeline_url, monkeypatch):
    """Regression: migrate() ran CREATE TABLE IF NOT EXISTS on the ledger even when it existed,
    which a pipeline login may not, so the schema asset failed on a current schema."""
    conn = psycopg2.connect(**connect_kwargs(pipeline_url))
    try:
        assert migrations.migrate(conn) == []
        assert migrations.current_version(conn) == migrations.latest_version()
    finally:
        conn.close()

    from agents_pipeline.defs.schema.assets import schema_version_current, shared_state_schema
    from agents_pipeline.platform.resources import postgres_resource

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", pipeline_url)
    with dg.instance_for_test() as instance:
        result = dg.materialize([shared_state_schema, schema_version_current],
                                resources={"postgres": postgres_resource()}, instance=instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["schema_version_current"] is True


EARLIER_DOMAIN_MIGRATION = """
-- What the domain migrations numbered before 0010 may create, all of it as the migrating login.
CREATE TYPE fleet.sample_state AS ENUM ('a', 'b');
CREATE DOMAIN fleet.percent AS double precision CHECK (VALUE >= 0);
CREATE TYPE fleet.pair AS (x int, y int);
CREATE SEQUENCE fleet.free_counter;
CREATE TABLE fleet.with_serial (id serial PRIMARY KEY, state fleet.sample_state, p fleet.percent);
CREATE TABLE fleet.rollup_by_day (day date NOT NULL, n int) PARTITION BY RANGE (day);
CREATE TABLE fleet.rollup_by_day_2020 PARTITION OF fleet.rollup_by_day FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE VIEW fleet.agents_down AS SELECT agent_id, name FROM fleet.agents WHERE status = 'down';
CREATE MATERIALIZED VIEW fleet.agent_counts AS SELECT status, count(*) AS n FROM fleet.agents GROUP BY status;
CREATE FUNCTION fleet.pipeline_helper() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION fleet.definer_helper() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    SET search_path = fleet, pg_temp AS 'SELECT count(*) FROM agents';
CREATE PROCEDURE fleet.maintain() LANGUAGE sql AS 'SELECT 1';
CREATE AGGREGATE fleet.total(int) (SFUNC = int4pl, STYPE = int);
CREATE EXTENSION IF NOT EXISTS citext SCHEMA fleet;
"""


def test_0010_adopts_whatever_earlier_migrations_created(pg_cluster, tmp_path, names):
    """0010 runs after the domain migrations 0003-0009, whose content it cannot know: every kind
    of object they may create ends owned by the owner role, closed to PUBLIC and the agent."""
    from agents_pipeline.core.settings import SQL_DIR
    from agents_pipeline_tests import pg

    for name in ("0001_core.sql", "0002_agent_api.sql", "0010_roles.sql"):
        (tmp_path / name).write_text((SQL_DIR / name).read_text())
    (tmp_path / "0005_domain.sql").write_text(EARLIER_DOMAIN_MIGRATION)
    dbname = pg.fresh_database(pg_cluster, "template0")
    try:
        conn = psycopg2.connect(**connect_kwargs(pg_cluster.url(dbname)))
        try:
            assert migrations.migrate(conn, tmp_path)[-1] == "0010_roles.sql"
        finally:
            conn.close()
        db = Database(pg_cluster.url(dbname), maxconn=1)
        try:
            db.transaction(lambda cur: cur.execute("SELECT fleet.apply_security()"))  # database-level part
            # 0010's own apply_security predates the advisory-lock revocation (sql/functions/), and
            # agent functions of later migrations (the tasks of 0014) do not exist here yet
            present = db.transaction(lambda cur: (cur.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'fleet'::regnamespace"), cur.fetchall())[1])
            absent = set(AGENT_FUNCTIONS) - {row[0] for row in present}
            assert [str(f) for f in audit(db, names) if "advisory" not in str(f)
                    and not any(f"fleet.{name}," in str(f) for name in absent)] == []
            owners = db.transaction(lambda cur: (cur.execute(
                "SELECT DISTINCT typowner::regrole::text FROM pg_type WHERE typname IN ('sample_state', 'percent', 'pair')"
                " UNION SELECT DISTINCT relowner::regrole::text FROM pg_class"
                " WHERE relname IN ('free_counter', 'with_serial_id_seq', 'rollup_by_day_2020', 'agent_counts')"),
                cur.fetchall())[1])
            assert owners == [[names.owner]]
        finally:
            db.close()
    finally:
        pg.drop_database(pg_cluster, dbname)
