"""Launching runs through the webserver's GraphQL API, so they land on the real instance.

``dagster job execute`` / ``dagster asset materialize`` run in the calling process on whatever
instance DAGSTER_HOME names, an ephemeral one when it is unset: the run is invisible in the UI
and skips the run queue, its concurrency limits and run monitoring. Going through the
webserver submits the run exactly as the Launchpad does.
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlsplit

from agents_pipeline.core.errors import ConfigurationError

UI_URL = "AGENTS_PIPELINE_UI_URL"
LOCATION_NAME = "agents_pipeline"
REPOSITORY_NAME = "__repository__"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def ui_url() -> str:
    """AGENTS_PIPELINE_UI_URL, else what `agents-pipeline dev` serves."""
    explicit = os.environ.get(UI_URL)
    if explicit:
        return explicit.rstrip("/")
    host = os.environ.get("AGENTS_PIPELINE_UI_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('AGENTS_PIPELINE_UI_PORT', '3000')}"


def client_for(url: str, timeout: int = 60):
    """A DagsterGraphQLClient for the webserver at ``url`` (http[s]://host[:port][/prefix])."""
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"webserver URL must look like http://host:port, got {url!r}")
    return DagsterGraphQLClient(
        parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"), timeout=timeout,
    )


def submit(client, job: str, *, run_config: dict | None = None, tags: dict[str, str] | None = None,
           asset_keys: list[str] | None = None, partition: str | None = None,
           location: str = LOCATION_NAME, repository: str = REPOSITORY_NAME) -> str:
    """Queues a run of ``job`` (``__ASSET_JOB`` with ``asset_keys`` for plain assets); returns its id."""
    from dagster_graphql import DagsterGraphQLClientError

    all_tags = dict(tags or {})
    if partition is not None:
        all_tags["dagster/partition"] = partition
    try:
        return client.submit_job_execution(
            job, repository_location_name=location, repository_name=repository,
            run_config=run_config or {}, tags=all_tags or None,
            asset_selection=[k.split("/") for k in asset_keys] if asset_keys else None,
        )
    except DagsterGraphQLClientError as exc:
        detail = f": {exc.body}" if getattr(exc, "body", None) else ""
        raise ConfigurationError(f"launching {job} refused: {exc.args[0] if exc.args else exc}{detail}") from None


def wait(client, run_id: str, timeout_s: float = 600.0, poll_s: float = 1.0) -> str:
    """Polls until the run ends; returns SUCCESS, FAILURE or CANCELED (raises on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_run_status(run_id).value
        if status in TERMINAL:
            return status
        if time.monotonic() >= deadline:
            raise TimeoutError(f"run {run_id} still {status.lower()} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def launch_command(args) -> int:
    """``agents-pipeline launch JOB``: submit, print the run's page, wait unless --no-wait."""
    import yaml

    run_config = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            run_config = yaml.safe_load(fh) or {}
        if not isinstance(run_config, dict):
            raise ConfigurationError(f"{args.config} must hold a YAML mapping of run config")
    tags = {}
    for item in args.tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--tag takes KEY=VALUE, got {item!r}")
        tags[key] = value
    url = (args.ui or ui_url()).rstrip("/")
    client = client_for(url)
    run_id = submit(client, args.job, run_config=run_config, tags=tags, asset_keys=args.asset,
                    partition=args.partition, location=args.location)
    as_json = getattr(args, "json", False)
    # Under --json, stdout holds the one result document; the progress line goes to stderr.
    print(f"launched {args.job}: {url}/runs/{run_id}", flush=True, file=sys.stderr if as_json else sys.stdout)
    status = None if args.no_wait else wait(client, run_id, timeout_s=args.timeout)
    if as_json:
        from agents_pipeline.console import print_json

        print_json({"job": args.job, "run_id": run_id, "url": f"{url}/runs/{run_id}",
                    "status": status and status.lower()})
    elif status is not None:
        print(f"run {run_id}: {status.lower()}")
    return 0 if status in (None, "SUCCESS") else 1
