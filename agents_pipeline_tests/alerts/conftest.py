"""The alerts tests use the heartbeats tests' fixtures: an engine on the per-test database and
a reference time."""

from agents_pipeline_tests.heartbeats.conftest import engine, t0  # noqa: F401
