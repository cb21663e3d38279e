"""The alerts tests use the heartbeats tests' reference time (``engine`` is the root fixture)."""

from agents_pipeline_tests.heartbeats.conftest import t0  # noqa: F401
