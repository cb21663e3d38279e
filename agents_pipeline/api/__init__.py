"""The HTTP API: agents report over HTTP with a ping key or their token, with no database login.

A layer above core, beside the Dagster platform: it imports core (connections, roles, validation),
Starlette and uvicorn, never Dagster or a domain, so it starts fast and runs as its own stateless
process (N replicas behind a load balancer). It connects with a login of its own
(``<prefix>_api``) that may call the agent functions and ``fleet.record_pings`` and nothing else,
so every request it serves must carry a ping key or an agent token, and meets the same
authentication, caps and rate limits as the database path (docs/security.md).
"""
