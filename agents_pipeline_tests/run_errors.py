"""What a failed in-process Dagster run said, for tests that assert on the error a user sees."""

from __future__ import annotations

import dagster as dg


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The run's error messages, with the causes Dagster wraps them around."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause or error.context
    return "\n".join(texts)
