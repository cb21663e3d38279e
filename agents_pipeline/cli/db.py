"""``agents-pipeline db ...``: the local cluster, the URL, migrations, backups."""

from __future__ import annotations

import argparse
import os
import shlex

from agents_pipeline.cli.conventions import add_command, add_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``db`` and its actions; each sets ``handler`` (``run``)."""
    db = add_command(subparsers, "db", "the shared-state database: local cluster, schema, backups",
                     ["agents-pipeline db up", "agents-pipeline db migrate --json"])
    db.set_defaults(handler=run)
    sub = db.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")
    p = add_command(sub, "up", "start the project-local PostgreSQL (when no URL is configured)", "agents-pipeline db up")
    add_json(p)
    p = add_command(sub, "down", "stop the project-local PostgreSQL", "agents-pipeline db down")
    add_json(p)
    p = add_command(sub, "status", "report the local cluster and the schema version",
                    ["agents-pipeline db status", "agents-pipeline db status --json"])
    add_json(p)
    add_command(sub, "url", "print the shared-state database URL (for scripts: the password included)",
                'export AGENTS_PIPELINE_DATABASE_URL="$(agents-pipeline db url)"')
    p = add_command(sub, "migrate", "apply pending schema migrations (idempotent)",
                    ["agents-pipeline db migrate", "agents-pipeline db migrate --json"])
    add_json(p)
    add_command(sub, "env", "print shell exports for Dagster's storage and the resource",
                'agents-pipeline db env > dagster.env   # then: source dagster.env')
    backup = add_command(sub, "backup", "pg_dump the shared-state database (custom format), with counts and "
                         "checksums beside it", ["agents-pipeline db backup",
                                                 "agents-pipeline db backup /srv/backups --json"])
    backup.add_argument("path", nargs="?", default=None,
                        help="file or folder to write (default: <project>/backups/agents_pipeline-<time>.dump)")
    add_json(backup)
    restore = add_command(sub, "restore", "pg_restore a backup into an empty database and check it against the "
                          "backup's counts and checksums",
                          "AGENTS_PIPELINE_RESTORE_DATABASE_URL=postgresql://... "
                          "agents-pipeline db restore backups/agents_pipeline-20260101T000000Z.dump",
                          )
    restore.add_argument("path", help="the .dump file written by db backup")
    restore.add_argument("--into", default=None, help="refused: the target URL comes from "
                         "AGENTS_PIPELINE_RESTORE_DATABASE_URL (argv shows in ps)")
    add_json(restore)
    grant = add_command(sub, "grant-agent", "print the connection settings an agent host needs",
                        ["agents-pipeline db grant-agent", "agents-pipeline db grant-agent --agent crawler --json"])
    add_json(grant)
    grant.add_argument("--new-password", action="store_true", help="set a new password for the agent login")
    grant.add_argument("--host", help="host agents use to reach the database (default: from the URL)")
    grant.add_argument("--port", type=int, help="port agents use (default: from the URL)")
    grant.add_argument("--agent", help="the settings of this agent's own login instead of the shared one")


def _configured_url() -> str | None:
    from agents_pipeline.core import settings  # not at import: --help and --version skip psycopg2

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
    from agents_pipeline.core import settings
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

    from agents_pipeline.console import print_json

    cluster = LocalCluster.default()
    configured = _configured_url()
    if args.action == "up":
        if configured:
            message = f"using {settings.DATABASE_URL} ({mask_url(configured)}); no local cluster started"
            result = {"started": False, "url": mask_url(configured), "message": message}
        else:
            url = cluster.up()
            result = {"started": True, "url": url, "message": url}
        if args.json:
            print_json(result)
        else:
            print(result["message"])
    elif args.action == "down":
        stopped = cluster.down()
        if args.json:
            print_json({"stopped": stopped})
        else:
            print("stopped" if stopped else "not running")
    elif args.action == "url":
        print(resolve_url())
    elif args.action == "migrate":
        from agents_pipeline.core import migrations

        applied = _migrate(resolve_url())
        if args.json:
            print_json({"applied": applied, "schema_version": migrations.latest_version()})
        else:
            print("\n".join(f"applied {name}" for name in applied) or "schema is current")
    elif args.action == "status":
        return _status(cluster, configured, args.json)
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


def _status(cluster, configured: str | None, as_json: bool) -> int:
    """The cluster and schema as a report; exit 1 when the database cannot be reached or its
    schema is behind the code's (a check that found a problem), 0 otherwise."""
    from agents_pipeline.console import print_json
    from agents_pipeline.core import migrations
    from agents_pipeline.core.dsn import mask_url
    from agents_pipeline.core.shared_state import resolve_url

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
    except Exception as exc:  # status reports, it does not stop at the first problem
        info["database_error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    info["ok"] = "database_error" not in info and info.get("schema_applied") == info["schema_latest"]
    if as_json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0 if info["ok"] else 1
