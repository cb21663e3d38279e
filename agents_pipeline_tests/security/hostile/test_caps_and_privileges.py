"""Each oversized request (batch, message, value, conversation, metrics, lease, help request)
and each privileged act (advisory locks, ending sessions, settings, token hashes) is refused
with a message that says why."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("attack", "expected"), [
    ("batch over 5000", "at most 5000 items"),
    ("message over 8192 bytes", "message larger than 8192 bytes"),
    ("kv value over 1 MiB", "larger than 1 MiB"),
    ("conversation over 1 MiB", "prompt larger than 1 MiB"),
    ("101 metric keys", "at most 100 metrics"),
    ("lease of 2 hours", "at most 1 hour"),
    ("help context over 16 KiB", "larger than 16 KiB"),
    ("help question over 8192 bytes", "1 to 8192 bytes"),
    ("migration lock", "permission denied for function pg_advisory_lock"),
    ("archive lock", "permission denied for function pg_try_advisory_lock"),
    ("read another agent's key", "may not read key"),
    ("write another agent's key", "may not write key"),
    ("read a key without a token", "an agent name and token are required"),
    ("end a session", "permission denied for function end_agent_session"),
    ("signal a backend", "must be a superuser to terminate superuser process"),
    ("lift temp_file_limit", "permission denied to set parameter"),
    ("turn activity tracking on", "permission denied to set parameter"),
    ("read token hashes", "permission denied for table agents"),
])
def test_each_attack_gets_a_clear_refusal(timeline, attack, expected):
    assert expected in timeline.outcomes[attack]
