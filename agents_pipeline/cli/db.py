"""``agents-pipeline db ...``: the local cluster, the URL, migrations."""

from __future__ import annotations

import argparse
import os
import shlex

from agents_pipeline.core import settings


def _configured_url() -> str | None:
    return os.environ.get(settings.DATABASE_URL) or None


def _migrate(url: str) -> list[str]:
    import psycopg2

    from agents_pipeline.core import migrations
    from agents_pipeline.core.dsn import connect_kwargs

    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        return migrations.migrate(conn)
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    from agents_pipeline.core.dsn import mask_url
    from agents_pipeline.core.localdb import LocalCluster
    from agents_pipeline.core.shared_state import resolve_url

    # Commands owned by other domains, wired here because they live under `db`.
    if args.action in ("backup", "restore"):
        from agents_pipeline.defs.retention import backup

        return backup.backup_command(args) if args.action == "backup" else backup.restore_command(args)
    if args.action == "grant-agent":
        from agents_pipeline.defs.security import grants

        return grants.grant_agent_command(args)

    cluster = LocalCluster.default()
    configured = _configured_url()
    if args.action == "up":
        if configured:
            print(f"using {settings.DATABASE_URL} ({mask_url(configured)}); no local cluster started")
            return 0
        print(cluster.up())
    elif args.action == "down":
        print("stopped" if cluster.down() else "not running")
    elif args.action == "url":
        print(resolve_url())
    elif args.action == "migrate":
        applied = _migrate(resolve_url())
        print("\n".join(f"applied {name}" for name in applied) or "schema is current")
    elif args.action == "status":
        from agents_pipeline.console import print_json
        from agents_pipeline.core import migrations

        info: dict = {"configured_url": mask_url(configured) if configured else None}
        if not configured:
            info["local_cluster"] = cluster.status()
        info["schema_latest"] = migrations.latest_version()
        try:
            import psycopg2

            from agents_pipeline.core.dsn import connect_kwargs

            conn = psycopg2.connect(**connect_kwargs(resolve_url()), connect_timeout=5)
            try:
                info["schema_applied"] = migrations.current_version(conn)
            finally:
                conn.close()
        except Exception as exc:  # status reports, it does not fail
            info["database_error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print_json(info)
    elif args.action == "env":
        from agents_pipeline.platform.instance_env import dagster_env, dagster_storage_env

        url = resolve_url()
        for key, value in dagster_env(url).items():
            print(f"export {key}={shlex.quote(value)}")
        # The root dagster.yaml needs nothing more; a copy of deploy/dagster.yaml reads these.
        print("# deploy/dagster.yaml reads Dagster's database from:")
        for key, value in dagster_storage_env(url).items():
            print(f"export {key}={shlex.quote(value)}")
    return 0
