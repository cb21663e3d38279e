"""Shared alerting service: alerts, their notification outbox, and the delivery channels.

Every domain that raises alerts (agent health, performance thresholds, the LangSmith sync)
goes through ``store.open_alert`` / ``store.resolve_alert``; delivery is one sender for all.
"""
