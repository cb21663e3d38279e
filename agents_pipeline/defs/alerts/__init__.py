"""Shared alerting service: alerts, their notification outbox, and the delivery channels.

Every domain that raises alerts (agent health, performance thresholds, the LangSmith sync)
goes through ``store.open_alert`` / ``store.resolve_alert``; the health evaluator does the same
set-based in SQL (``fleet.evaluate_health``). Delivery is one sender for all (``sender``), over
the channels in ``channels`` configured by ``resources.AlertChannelsResource``; its Dagster
sensor lives in ``agents_pipeline.defs.alerts.sensors``.
"""
