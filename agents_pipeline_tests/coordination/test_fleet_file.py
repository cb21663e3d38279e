"""Fleet as code against a real registry: plan and apply are idempotent, drift is detected (CLI and
the fleet_config asset), removal only with --prune, export round-trips, and a malformed or hostile
file is refused with one line and changes nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core import registry
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import AuthError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.coordination import fleet_config, fleet_file
from agents_pipeline.platform.resources import PostgresResource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml"


def _rows(db_url: str) -> list[tuple]:
    """Everything apply may touch, for before/after comparisons."""
    conn = psycopg2.connect(**connect_kwargs(db_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("""SELECT name, agent_type, host, period, grace, capabilities, process_pid, process_pidfile,
                                  process_match, config, fleet_managed, retired_at, token_hash, ping_key, updated_at,
                                  paused FROM fleet.agents ORDER BY name""")
            return cur.fetchall()
    finally:
        conn.close()


def _write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_apply_registers_the_example_fleet_and_a_second_apply_changes_nothing(db_env, tmp_path, capsys):
    assert main(["fleet", "plan", str(EXAMPLE)]) == 1                       # changes pending: exit 1
    out = capsys.readouterr().out
    assert "+ summariser" in out and "3 to add, 0 to change, 0 to remove" in out

    tokens = tmp_path / "tokens.txt"
    assert main(["fleet", "apply", str(EXAMPLE), "--tokens-file", str(tokens)]) == 0
    out = capsys.readouterr().out
    assert "3 token(s) written" in out and "apt_" not in out                # tokens only in the file
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    issued = dict(line.split("\t") for line in tokens.read_text().splitlines())
    assert sorted(issued) == ["indexer", "nightly-report", "summariser"]

    rows = {r[0]: r for r in _rows(db_env)}
    summariser = rows["summariser"]
    assert (summariser[1], summariser[5], summariser[8]) == ("llm-worker", ["summarise"], "python -m summariser")
    assert summariser[9]["thresholds"]["cpu_percent"] == {"above": 150, "for_s": 600}
    assert rows["indexer"][7] == "/run/indexer.pid" and rows["indexer"][9]["alert_routes"] == ["email"]
    assert rows["nightly-report"][2] == "reports-1" and rows["nightly-report"][3].total_seconds() == 86400
    assert all(r[10] for r in rows.values())                                   # declared by a file

    # The issued token works: the agent heartbeats with it.
    with SharedState(db_env, agent="indexer", token=issued["indexer"].strip(), retry_window=5) as agent:
        agent.heartbeat()
    before = _rows(db_env)
    assert main(["fleet", "plan", str(EXAMPLE)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["fleet", "apply", str(EXAMPLE), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["added"], result["changed"], result["removed"], result["tokens"]) == ([], [], [], {})
    assert _rows(db_env) == before                                              # not even updated_at moved

    # Ping keys stay retrievable.
    assert main(["agents", "ping-url", "summariser"]) == 0
    assert f"/ping/{rows['summariser'][13]}" in capsys.readouterr().out


def test_drift_is_planned_and_reported_by_the_asset_as_a_warning(db_env, database, tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, EXAMPLE.read_text())
    monkeypatch.setenv(fleet_config.FLEET_FILE_ENV, path)
    postgres = PostgresResource(url=db_env)
    _, check = fleet_config.evaluate(postgres)
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "3 agent(s) drifted" in check.description

    assert main(["fleet", "apply", path]) == 0
    capsys.readouterr()
    with dg.instance_for_test() as instance:
        result = dg.materialize([fleet_config.fleet_config], resources={"postgres": postgres}, instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and "matches" in evaluation.description

    # By hand: a period changed, a capability granted, an agent registered outside the file.
    database.transaction(lambda cur: cur.execute(
        "UPDATE fleet.agents SET period = interval '90 seconds' WHERE name = 'summariser'"))
    registry.set_capabilities(database, "indexer", ["index"])
    registry.register_agent(database, "by-hand")
    assert main(["fleet", "plan", path, "--json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    changed = {c["name"]: c["changes"] for c in plan["changed"]}
    assert changed == {"summariser": {"period_s": {"from": 90.0, "to": 60.0}},
                       "indexer": {"capabilities": {"from": ["index"], "to": ["index", "summarise"]}}}
    assert (plan["added"], plan["removed"], plan["unmanaged"]) == ([], [], ["by-hand"])
    meta, check = fleet_config.evaluate(postgres)
    assert (check.passed, meta["agents_differing"], meta["agents_unmanaged"]) == (False, 2, 1)
    assert "summariser | differs | period_s" in meta["drift"].value

    assert main(["fleet", "apply", path]) == 0
    assert fleet_config.evaluate(postgres)[1].passed
    assert registry.capabilities(database, "indexer") == ["index", "summarise"]


def test_no_fleet_file_passes_and_says_so(db_env, tmp_path, monkeypatch):
    monkeypatch.setenv(fleet_config.FLEET_FILE_ENV, str(tmp_path / "absent.yaml"))
    meta, check = fleet_config.evaluate(PostgresResource(url=db_env))
    assert check.passed and "no fleet file at" in check.description and "absent.yaml" in meta["fleet_file"]


def test_removal_only_with_prune_retires_and_a_redeclared_agent_comes_back(db_env, tmp_path, capsys):
    path = _write(tmp_path, EXAMPLE.read_text())
    assert main(["fleet", "apply", path, "--json"]) == 0
    tokens = json.loads(capsys.readouterr().out)["tokens"]
    with SharedState(db_env, retry_window=5) as operator:
        task_id = operator.submit_task("index", {"doc": 1}, capability="index", agent="summariser")
    held = SharedState(db_env, agent="indexer", token=tokens["indexer"], retry_window=5)
    (task,) = held.claim_tasks(["index"], 1, 600)

    shorter = EXAMPLE.read_text().split("  - name: indexer")[0] + "  - name: nightly-report" + \
        EXAMPLE.read_text().split("  - name: nightly-report")[1]
    Path(path).write_text(shorter)
    assert fleet_file.load(path).agents.keys() == {"summariser", "nightly-report"}
    assert main(["fleet", "apply", path]) == 0
    out = capsys.readouterr().out
    assert "- indexer (not declared; kept: --prune retires it)" in out
    held.heartbeat()                                                     # still works
    assert main(["fleet", "plan", path]) == 1
    capsys.readouterr()

    assert main(["fleet", "apply", path, "--prune"]) == 0
    assert "- indexer (retired)" in capsys.readouterr().out
    with pytest.raises(AuthError):
        held.heartbeat()
    held.close()
    with SharedState(db_env, retry_window=5) as operator:
        status = operator.get_task(task_id, agent="summariser")
    assert (status.state, status.claimed_by) == ("ready", "indexer")     # back in the queue at once
    assert main(["fleet", "plan", path]) == 0                            # retired: no longer drift
    capsys.readouterr()
    assert main(["fleet", "export"]) == 0
    assert "indexer" not in capsys.readouterr().out

    Path(path).write_text(EXAMPLE.read_text())
    assert main(["fleet", "apply", path, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in again["added"]] == ["indexer"] and again["tokens"]["indexer"] != tokens["indexer"]
    with SharedState(db_env, agent="indexer", token=again["tokens"]["indexer"], retry_window=5) as back:
        back.heartbeat()


def test_export_round_trips(db_env, database, tmp_path, capsys):
    registry.register_agent(database, "by-hand", period_s=15, grace_s=5, agent_type="scraper", match="scrape.py")
    registry.set_capabilities(database, "by-hand", ["crawl"])
    assert main(["fleet", "apply", str(EXAMPLE)]) == 0
    capsys.readouterr()
    out = tmp_path / "exported.yaml"
    assert main(["fleet", "export", "--output", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agents"] == 4
    exported = fleet_file.load(out)
    assert exported.agents["by-hand"].process == ("match", "scrape.py")
    assert exported.agents["indexer"].silence_windows == ({"days": ["sun"], "start": "02:00", "end": "04:00"},)
    assert main(["fleet", "plan", str(out), "--json"]) == 1               # only the adoption of by-hand
    plan = json.loads(capsys.readouterr().out)
    assert plan["changed"] == [{"name": "by-hand", "changes": {"managed": {"from": False, "to": True}}}]
    assert main(["fleet", "apply", str(out)]) == 0
    assert main(["fleet", "plan", str(out)]) == 0


HOSTILE = {
    "alias bomb": ("version: 1\nx: &a [1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "z: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nagents: []\n", "aliases"),
    "deep nesting": ("version: 1\nagents: " + "[" * 200 + "]" * 200 + "\n", "levels deep"),
    "unknown top key": ("version: 1\nagents: []\nextra: 1\n", "unknown key(s) 'extra'"),
    "unknown agent key": ("version: 1\nagents:\n  - name: a\n    capabilites: [x]\n", "unknown key(s) 'capabilites'"),
    "bad name": ("version: 1\nagents:\n  - name: \"../etc; DROP TABLE\"\n", "agents[0].name must be"),
    "control character": ("version: 1\nagents:\n  - name: \"a\\u0007b\"\n", "agents[0].name must be"),
    "duplicate agent": ("version: 1\nagents:\n  - name: a\n  - name: a\n", "'a' is declared twice"),
    "duplicate key": ("version: 1\nagents:\n  - name: a\n    period_s: 10\n    period_s: 20\n", "duplicate key"),
    "string period": ("version: 1\nagents:\n  - name: a\n    period_s: \"60\"\n", "period_s must be a number"),
    "boolean period": ("version: 1\nagents:\n  - name: a\n    period_s: yes\n", "period_s must be a number"),
    "negative grace": ("version: 1\nagents:\n  - name: a\n    grace_s: -1\n", "grace_s must be 0 to"),
    "agents a mapping": ("version: 1\nagents: {a: {}}\n", "'agents' must be a list"),
    "no version": ("agents: []\n", "'version' must be 1"),
    "not a mapping": ("- 1\n- 2\n", "must be a mapping"),
    "python tag": ("version: 1\nagents: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "route with a url": ("version: 1\nagents:\n  - name: a\n    alert_routes: [\"https://evil.example/hook\"]\n",
                         "alert_routes must be a list of channel names"),
    "unknown threshold rule": ("version: 1\nagents:\n  - name: a\n    thresholds: {disk: {above: 1}}\n",
                               "unknown rule 'disk'"),
    "host rule on an agent": ("version: 1\nagents:\n  - name: a\n    thresholds: {host_cpu_percent: {above: 1}}\n",
                              "applies to the host"),
    "bad capability": ("version: 1\nagents:\n  - name: a\n    capabilities: [\"x y\"]\n", "capability must be"),
    "two process locators": ("version: 1\nagents:\n  - name: a\n    process: {pid: 1, match: x}\n",
                             "must be one of"),
    "bad regex": ("version: 1\nagents:\n  - name: a\n    process: {match: \"(\"}\n", "not a valid regular expression"),
    "unquoted time": ("version: 1\nagents:\n  - name: a\n    silence_windows: [{start: 12:30, end: \"13:00\"}]\n",
                      "quote the time"),
    "too many agents": ("version: 1\nagents:\n" + "".join(f"  - name: a{i}\n" for i in range(5001)),
                        "more than 5000"),
    "not utf-8": (b"version: 1\nagents: []\n# \xff\xfe\n", "not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_or_malformed_file_is_refused_with_one_line(case, db_env, tmp_path, capsys):
    text, message = HOSTILE[case]
    path = tmp_path / "fleet.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    before = _rows(db_env)
    for command in ("plan", "apply"):
        assert main(["fleet", command, str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert _rows(db_env) == before


def test_a_huge_file_or_not_a_file_is_refused_before_parsing(db_env, tmp_path, capsys):
    huge = tmp_path / "huge.yaml"
    huge.write_text("version: 1\nagents: []\n" + "#" * fleet_file.MAX_BYTES)
    assert main(["fleet", "plan", str(huge)]) == 2
    assert "larger than 1048576 bytes" in capsys.readouterr().err
    assert main(["fleet", "plan", str(tmp_path)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert main(["fleet", "apply", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_an_existing_tokens_file_is_refused_before_anything_is_applied(db_env, tmp_path, capsys):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("earlier tokens\n")
    assert main(["fleet", "apply", str(EXAMPLE), "--tokens-file", str(tokens)]) == 2
    assert "exists" in capsys.readouterr().err
    assert tokens.read_text() == "earlier tokens\n" and _rows(db_env) == []


def test_the_example_is_shipped_with_the_package_docs():
    """examples/fleet.yaml is what the README's done-when runs: it must stay valid."""
    assert set(fleet_file.load(EXAMPLE).agents) == {"summariser", "indexer", "nightly-report"}
