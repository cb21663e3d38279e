"""Passwords are masked wherever a URL or connection setting reaches an error or a log."""

from __future__ import annotations

import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core import errors
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, mask_url

SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(("text", "expected"), [
    (f"postgresql+psycopg2://fleet:{SECRET}@db.example:5432/app",
     "postgresql+psycopg2://fleet:***@db.example:5432/app"),
    (f"postgresql://:{SECRET}@db/app", "postgresql://:***@db/app"),
    (f"postgresql://fleet:{SECRET}@with@at@db/app?sslmode=require",  # unencoded @ in the password
     "postgresql://fleet:***@db/app?sslmode=require"),
    (f"could not reach postgresql://a:{SECRET}@h1/x nor postgresql://b:{SECRET}@h2/y",
     "could not reach postgresql://a:***@h1/x nor postgresql://b:***@h2/y"),
    (f"postgresql://fleet@/app?host=/run/pg&password={SECRET}&sslmode=verify-full",
     "postgresql://fleet@/app?host=/run/pg&password=***&sslmode=verify-full"),
    (f"host=db user=fleet password='{SECRET} with space' dbname=app",
     "host=db user=fleet password=*** dbname=app"),
    (f"PGPASSWORD={SECRET} psql", "PGPASSWORD=*** psql"),
    (f"sslpassword={SECRET}", "sslpassword=***"),
    (f"kwargs {{'user': 'fleet', 'password': '{SECRET}', 'host': 'db'}}",
     "kwargs {'user': 'fleet', 'password': '***', 'host': 'db'}"),
    (f'{{"AGENTS_PIPELINE_DAGSTER_PG_PASSWORD": "{SECRET}"}}', '{"AGENTS_PIPELINE_DAGSTER_PG_PASSWORD": "***"}'),
    ("postgresql://fleet@db:5432/app", "postgresql://fleet@db:5432/app"),
    ("http://127.0.0.1:8080/hook and mail ops@example.com", "http://127.0.0.1:8080/hook and mail ops@example.com"),
])
def test_mask_url(text, expected):
    assert mask_url(text) == expected
    assert SECRET not in mask_url(text)


def test_a_malformed_url_is_reported_masked():
    with pytest.raises(errors.ConfigurationError) as info:
        connect_kwargs(f"postgresql+psycopg2://fleet:{SECRET}@db/app?evil=1")
    assert "unknown parameter 'evil'" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(errors.ConfigurationError) as info:
        connect_kwargs(f"mysql://fleet:{SECRET}@db/app")
    assert SECRET not in str(info.value)


def test_an_unreachable_database_is_reported_masked():
    db = Database(f"postgresql+psycopg2://fleet:{SECRET}@127.0.0.1:1/app", maxconn=1, retry_window=0.3)
    try:
        with pytest.raises(errors.DatabaseUnavailableError) as info:
            db.transaction(lambda cur: cur.execute("SELECT 1"))
    finally:
        db.close()
    assert "fleet:***@127.0.0.1:1" in str(info.value) and SECRET not in str(info.value)


def test_the_cli_prints_one_masked_line(monkeypatch, capsys):
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", f"postgresql+psycopg2://fleet:{SECRET}@127.0.0.1:1/app")
    monkeypatch.setenv("AGENTS_PIPELINE_RETRY_WINDOW_S", "0.3")
    assert main(["status"]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert out.err.startswith("agents-pipeline: ") and "***" in out.err
