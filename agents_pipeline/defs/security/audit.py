"""What the roles can actually do, read back from the catalogs and compared with the design.

Grants drift: a later migration creates a function that PUBLIC may execute (PostgreSQL's
default), a table the agent can read, an object owned by whoever applied it. This audit asks
PostgreSQL (has_*_privilege, the ACLs themselves) rather than trusting the migration text,
so it sees what a connected agent would see. Used by `agents-pipeline security audit`, the
Dagster asset check and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_pipeline.core.connection import Database
from agents_pipeline.core.roles import AGENT_FUNCTIONS, API_FUNCTIONS, Roles, roles

# System catalogs are visible to every login by design and never count as a finding.
_RELATIONS = """
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(%(role)s, c.oid, 'USAGE,SELECT,UPDATE')
           ELSE has_table_privilege(%(role)s, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
                OR has_any_column_privilege(%(role)s, c.oid, 'SELECT,INSERT,UPDATE,REFERENCES') END
ORDER BY 1"""

_EXECUTABLE = """
SELECT n.nspname, p.proname, p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')
ORDER BY 3"""

_CREATE_SCHEMAS = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND has_schema_privilege(%(role)s, n.oid, 'CREATE')
ORDER BY 1"""

_PUBLIC_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = 'fleet'::regnamespace
  AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
ORDER BY 1"""

_NOT_OWNED = """
SELECT 'schema fleet' FROM pg_namespace WHERE nspname = 'fleet' AND nspowner <> %(owner)s::regrole
UNION ALL
SELECT 'relation ' || c.oid::regclass::text FROM pg_class c
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND c.relowner <> %(owner)s::regrole
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                    AND e.deptype = 'e')
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = 'fleet'::regnamespace AND p.proowner <> %(owner)s::regrole
  AND NOT (p.oid = to_regprocedure('fleet.end_agent_session(integer)')
           AND p.proowner = to_regrole(%(signaller)s))
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
                    AND e.deptype = 'e')
ORDER BY 1"""

_DEFINER_WITHOUT_PATH = """
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = 'fleet'::regnamespace AND p.prosecdef
  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\\_path=%')
ORDER BY 1"""

_PIPELINE_MISSING = """
SELECT 'table ' || c.oid::regclass::text FROM pg_class c
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
  AND NOT (has_table_privilege(%(pipeline)s, c.oid, 'SELECT') AND has_table_privilege(%(pipeline)s, c.oid, 'INSERT')
           AND has_table_privilege(%(pipeline)s, c.oid, 'UPDATE') AND has_table_privilege(%(pipeline)s, c.oid, 'DELETE'))
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = 'fleet'::regnamespace AND p.proname NOT IN ('apply_security', 'ensure_roles')
  AND NOT has_function_privilege(%(pipeline)s, p.oid, 'EXECUTE')
ORDER BY 1"""


@dataclass(frozen=True)
class Finding:
    """One way the database differs from the least-privilege design."""

    role: str
    problem: str

    def __str__(self) -> str:
        return f"{self.role}: {self.problem}"


def _login_findings(cur, role: str, allowed_functions: tuple[str, ...], caller: str, attrs: tuple) -> list[Finding]:
    """What a narrow login (the agents' or the HTTP API's) may do beyond its allow-list."""
    out: list[Finding] = []
    if any(attrs):
        out.append(Finding(role, "has SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS"))
    cur.execute("SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = %s::regrole", (role,))
    out += [Finding(role, f"is a member of role {r}") for (r,) in cur.fetchall()]
    cur.execute(_RELATIONS, {"role": role})
    out += [Finding(role, f"has privileges on {r}") for (r,) in cur.fetchall()]
    cur.execute(_EXECUTABLE, {"role": role})
    allowed = {("fleet", f) for f in allowed_functions}
    executable = cur.fetchall()
    out += [Finding(role, f"may execute {sig}") for schema, name, sig in executable if (schema, name) not in allowed]
    granted = {(schema, name) for schema, name, _ in executable}
    out += [Finding(role, f"may not execute fleet.{f}, which {caller} needs")
            for f in allowed_functions if ("fleet", f) not in granted]
    cur.execute(_CREATE_SCHEMAS, {"role": role})
    out += [Finding(role, f"may CREATE in schema {s}") for (s,) in cur.fetchall()]
    cur.execute("SELECT has_database_privilege(%s, current_database(), 'CREATE'), "
                "has_database_privilege(%s, current_database(), 'TEMPORARY')", (role, role))
    create_db, temp = cur.fetchone()
    if create_db:
        out.append(Finding(role, "may CREATE schemas in this database"))
    if temp:
        out.append(Finding(role, "may create temporary tables (run `agents-pipeline db grant-agent`)"))
    cur.execute("SELECT setconfig FROM pg_db_role_setting WHERE setrole = %s::regrole AND setdatabase = 0",
                (role,))
    settings = {s for row in cur.fetchall() for s in (row[0] or [])}
    if "track_activities=off" not in settings:
        out.append(Finding(role, "track_activities is on: agents can read each other's tokens in "
                                 "pg_stat_activity (a superuser must set it off, see docs/security.md)"))
    if "temp_file_limit" not in {s.split("=", 1)[0] for s in settings}:
        out.append(Finding(role, "has no temp_file_limit: one query can fill the server's disk "
                                 "(a superuser must set it, see docs/security.md)"))
    cur.execute("SELECT has_function_privilege(%s, 'pg_catalog.pg_advisory_lock(bigint)', 'EXECUTE')", (role,))
    if cur.fetchone()[0]:
        out.append(Finding(role, "may take advisory locks and so stall `db migrate` and archival "
                                 "(a superuser must run `agents-pipeline db grant-agent`, see docs/security.md)"))
    return out


def audit(db: Database, names: Roles | None = None) -> list[Finding]:
    """Every deviation from the design; an empty list means the roles are as intended."""
    names = names or roles()

    def work(cur) -> list[Finding]:
        # The API's login is part of the design from the schema that serves the API (0013) on.
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'record_pings' "
                    "AND pronamespace = 'fleet'::regnamespace)")
        with_api = cur.fetchone()[0]
        wanted = (names.owner, names.pipeline, names.agent, *([names.api] if with_api else []))
        cur.execute("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
                    "rolcanlogin FROM pg_roles WHERE rolname = ANY (%s)", (list(wanted),))
        found = {row[0]: row for row in cur.fetchall()}
        missing = [r for r in wanted if r not in found]
        if missing:
            return [Finding(r, "role does not exist: run `agents-pipeline db migrate`") for r in missing]
        out = _login_findings(cur, names.agent, AGENT_FUNCTIONS, "SharedState", found[names.agent][1:6])
        if with_api:
            out += _login_findings(cur, names.api, API_FUNCTIONS, "the HTTP API", found[names.api][1:6])
        cur.execute(_PUBLIC_FUNCTIONS)
        out += [Finding("PUBLIC", f"may execute {sig}") for (sig,) in cur.fetchall()]
        cur.execute(_NOT_OWNED, {"owner": names.owner, "signaller": names.signaller})
        out += [Finding(names.owner, f"does not own {what}") for (what,) in cur.fetchall()]
        cur.execute(_DEFINER_WITHOUT_PATH)
        out += [Finding(names.owner, f"SECURITY DEFINER function {sig} has no fixed search_path")
                for (sig,) in cur.fetchall()]
        cur.execute(_PIPELINE_MISSING, {"pipeline": names.pipeline})
        out += [Finding(names.pipeline, f"lacks its grants on {what}") for (what,) in cur.fetchall()]
        return out

    return db.transaction(work)
