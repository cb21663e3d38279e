"""`agents-pipeline db grant-agent`: what an agent host needs to reach the shared state.

Prints the agent login's URL (its own role, never the operator's user or password), how the
agent passes its token, and the TLS settings; sets the login's password when it has none or
when asked. The password goes to the server as a SCRAM verifier computed here (as psql's
\\password does), so the plain text is in no statement, log or pg_stat_activity row.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from agents_pipeline.core import registry, settings
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.errors import AuthError, ConfigurationError
from agents_pipeline.core.roles import Roles, roles

_ENCRYPTED_MODES = {"require", "verify-ca", "verify-full"}
TOKEN_HINT = ("<this agent's token: `agents-pipeline agents register NAME` prints it once, "
              "`agents-pipeline agents rotate-token NAME` issues a new one>")


@dataclass
class AgentGrant:
    """The settings for an agent host; ``password`` is set only when it was just created."""

    role: str
    url: str
    password_state: str  # "new", "unchanged" or "unknown"
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _has_password(cur, role: str) -> bool | None:
    """Whether the login has a password; None when this login may not read pg_authid."""
    cur.execute("SAVEPOINT probe")
    try:
        cur.execute("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (role,))
        row = cur.fetchone()
        cur.execute("RELEASE SAVEPOINT probe")
        return bool(row and row[0])
    except psycopg2.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT probe")
        return None


def grant_agent(db: Database, *, names: Roles | None = None, new_password: bool = False,
                host: str | None = None, port: int | None = None, agent: str | None = None) -> AgentGrant:
    """Makes sure the agent login can connect and returns its connection settings.

    Re-applies the schema's roles and grants (fleet.apply_security), which also restores
    what a restore into a new database, or onto a server without the roles, does not carry.
    With ``agent``, the settings are that agent's own login's (its password is its token).
    """
    names = names or roles()
    operator = connect_kwargs(db.pool.url)
    if agent is not None:
        return _own_login_grant(db, agent, operator, host, port)

    def work(cur) -> tuple[str | None, bool | None]:
        cur.execute("SELECT to_regprocedure('fleet.apply_security()') IS NOT NULL")
        if not cur.fetchone()[0]:
            raise ConfigurationError("fleet.apply_security() is missing: run `agents-pipeline db migrate` first")
        cur.execute("SELECT fleet.apply_security()")  # creates missing roles (a restore elsewhere)
        cur.execute("SELECT to_regrole(%s) IS NOT NULL", (names.agent,))
        if not cur.fetchone()[0]:
            raise ConfigurationError(f"role {names.agent} does not exist: the schema was migrated with another "
                                     "AGENTS_PIPELINE_ROLE_PREFIX")
        cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(names.agent)))
        had = _has_password(cur, names.agent)
        if not new_password and had is not False:
            return None, had
        password = secrets.token_urlsafe(32)
        verifier = psycopg2.extensions.encrypt_password(password, names.agent, cur.connection, "scram-sha-256")
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(names.agent)), (verifier,))
        return password, had

    try:
        password, had = db.transaction(work)
    except AuthError as exc:
        raise AuthError(f"{exc}: grant-agent must run as the schema owner or a superuser") from None

    target_host = host or str(operator.get("host") or "localhost")
    target_port = int(port or operator.get("port") or 5432)
    query: dict[str, str] = {}
    ssl = settings.ssl_params()
    sslmode = str(operator.get("sslmode") or ssl.get("sslmode") or "")
    if sslmode:
        query["sslmode"] = sslmode
    url = make_url(str(operator["dbname"]), user=names.agent, host=target_host, port=target_port,
                   password=password, **query)
    grant = AgentGrant(role=names.agent, url=url,
                       password_state="new" if password else ("unchanged" if had else "unknown"))
    grant.env[settings.DATABASE_URL] = url
    if sslmode in ("verify-ca", "verify-full"):
        grant.env[settings.SSLROOTCERT] = "<path of the CA certificate on the agent host>"
    grant.env[settings.AGENT_TOKEN] = TOKEN_HINT
    if password:
        grant.notes.append("the password is shown only now; every agent host shares this login")
    elif had:
        grant.notes.append("the login's password is unchanged and not shown: put it in the URL where "
                           "<password> stands, or pass --new-password (then update every agent host)")
    else:
        grant.notes.append("this login may not read whether a password is set: pass --new-password "
                           "to set one, or put the known one in the URL")
    if not password:
        grant.url = grant.env[settings.DATABASE_URL] = make_url(
            str(operator["dbname"]), user=names.agent, host=target_host, port=target_port,
            password="<password>", **query).replace("%3Cpassword%3E", "<password>")
    loopback = target_host.startswith("/") or target_host in ("localhost", "127.0.0.1", "::1")
    if not loopback and sslmode not in _ENCRYPTED_MODES:
        grant.notes.append(f"traffic to {target_host} is not required to be encrypted: set "
                           f"{settings.SSLMODE}=verify-full (and {settings.SSLROOTCERT}) before running this")
    return grant


def _own_login_grant(db: Database, agent: str, operator: dict, host: str | None, port: int | None) -> AgentGrant:
    """An agent's own login (made at registration): limited to its connections and its agent."""
    login = db.transaction(lambda cur: (cur.execute(
        "SELECT db_login FROM fleet.agents WHERE name = %s", (agent,)), cur.fetchone())[1])
    if login is None:
        raise ConfigurationError(f"unknown agent {agent!r}")
    if login[0] is None:
        raise ConfigurationError(f"agent {agent!r} has no login of its own: register it (or rotate its token) "
                                 "as a login with CREATEROLE")
    sslmode = str(operator.get("sslmode") or settings.ssl_params().get("sslmode") or "")
    query = {"sslmode": sslmode} if sslmode else {}
    url = make_url(str(operator["dbname"]), user=login[0], host=host or str(operator.get("host") or "localhost"),
                   port=int(port or operator.get("port") or 5432), **query)
    grant = AgentGrant(role=login[0], url=url, password_state="the agent's token")
    grant.env[settings.DATABASE_URL] = url
    grant.env[settings.AGENT_TOKEN] = TOKEN_HINT
    grant.notes.append(f"the login's password is {agent}'s token (SharedState sends it, as SCRAM); "
                       f"at most {registry.connection_limit()} connections; it may act for {agent} only")
    return grant


def render(grant: AgentGrant) -> str:
    lines = [
        f"# Settings for an agent host (login role {grant.role}). Keep them in the agent's",
        "# environment or a file only it can read, never on its command line (ps shows it).",
    ]
    for key, value in grant.env.items():
        shown = value if value.startswith("<") else shlex.quote(value)
        lines.append(f"export {key}={shown}")
    lines += [f"# {note}" for note in grant.notes]
    return "\n".join(lines)


def grant_agent_command(args: argparse.Namespace) -> int:
    """Handler of `agents-pipeline db grant-agent` and `agents-pipeline security grant-agent`."""
    from agents_pipeline.core.shared_state import resolve_url

    db = Database(resolve_url(), maxconn=1)
    try:
        grant = grant_agent(db, new_password=getattr(args, "new_password", False),
                            host=getattr(args, "host", None), port=getattr(args, "port", None),
                            agent=getattr(args, "agent", None))
    finally:
        db.close()
    if getattr(args, "json", False):
        from agents_pipeline.console import print_json

        print_json({"role": grant.role, "url": grant.url, "password": grant.password_state,
                    "env": grant.env, "notes": grant.notes})
    else:
        print(render(grant))
    return 0
