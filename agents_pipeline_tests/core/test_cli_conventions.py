"""The conventions of every `agents-pipeline` command (issue #21), read from the parser itself so
that a command added later without them fails here: help text and an example on every command,
``--json`` on every command that acts, exit 0 / 1 (a check found problems) / 2 (could not run),
errors as one line on stderr, and docs/cli.md generated from the same parser."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from agents_pipeline.cli import reference
from agents_pipeline.cli.main import build_parser, main

PARSER = build_parser()
COMMANDS = dict(reference.subcommands(PARSER))

# Commands that act but whose output is not a result document.
WITHOUT_JSON = {
    "agents-pipeline db url": "prints the URL for $(...) in scripts",
    "agents-pipeline db env": "prints shell exports for eval",
    "agents-pipeline api": "a server: runs until stopped",
    "agents-pipeline dev": "a server: runs until Ctrl-C",
    "agents-pipeline demo-fleet": "simulated agents: run until Ctrl-C",
    "agents-pipeline demo-swarm": "simulated agents: run until Ctrl-C",
}


def _summaries(parser: argparse.ArgumentParser, out: dict[str, str] | None = None) -> dict[str, str]:
    """The one-line help each command shows in its parent's list, by full command."""
    out = {} if out is None else out
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                out[f"{parser.prog} {choice.dest}"] = choice.help or ""
            for child in action.choices.values():
                _summaries(child, out)
    return out


SUMMARIES = _summaries(PARSER)


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


LEAVES = [prog for prog, parser in COMMANDS.items() if _is_leaf(parser)]


def test_the_walk_sees_every_command() -> None:
    """Guards the walk itself: were it to find nothing, every test below would pass vacuously."""
    assert {"agents-pipeline agents pause", "agents-pipeline archive run", "agents-pipeline db backup",
            "agents-pipeline langsmith sync", "agents-pipeline heartbeat"} <= set(COMMANDS)
    assert len(LEAVES) >= 45


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_every_command_has_help_and_an_example_of_itself(prog: str) -> None:
    parser = COMMANDS[prog]
    assert SUMMARIES[prog].strip(), f"{prog}: no help in `{prog.rsplit(' ', 1)[0]} -h`"
    assert (parser.description or "").strip(), f"{prog}: no description in its own -h"
    epilog = parser.epilog or ""
    assert epilog.startswith(("example:", "examples:")), f"{prog}: no example (use conventions.add_command)"
    assert any(re.search(re.escape(prog) + r"(\W|$)", line) for line in epilog.splitlines()[1:]), \
        f"{prog}: its examples do not show the command itself"
    assert "example" in parser.format_help().split("\n\n")[-1]   # shown, and kept as written


@pytest.mark.parametrize("prog", LEAVES)
def test_every_command_that_acts_takes_json(prog: str) -> None:
    options = {s for a in COMMANDS[prog]._actions for s in a.option_strings}
    if prog in WITHOUT_JSON:
        assert "--json" not in options, f"{prog} has --json now: take it out of WITHOUT_JSON"
    else:
        assert "--json" in options, f"{prog}: commands that act take --json (conventions.add_json)"


@pytest.mark.parametrize("prog", LEAVES)
def test_a_usage_error_exits_2(prog: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*prog.split()[1:], "--no-such-option"])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]   # argparse: the usage, then one error line
    assert last.startswith(("agents-pipeline: error: unrecognized arguments: --no-such-option",
                            f"{prog}: error: the following arguments are required")), last


def test_top_level_help_is_for_users_and_version_comes_from_the_package(capsys) -> None:
    text = PARSER.format_help()
    assert "Operate a fleet of background AI agents" in text and "Entry point" not in text
    assert "exit codes:" in text and "docs/cli.md" in text and "agents-pipeline heartbeat crawler" in text
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"agents-pipeline {version('agents_pipeline')}\n"


def test_docs_cli_md_matches_the_parser() -> None:
    """Fails when a command's help changed and docs/cli.md was not regenerated (`make cli-docs`)."""
    assert reference.DOC.read_text(encoding="utf-8") == reference.render(), "run `make cli-docs`"
    assert reference.main(["--check"]) == 0


def test_reference_check_reports_a_stale_file(tmp_path, capsys) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    assert reference.main(["--check", "--output", str(stale)]) == 1
    assert "does not match the parser" in capsys.readouterr().err
    assert reference.main(["--output", str(stale)]) == 0 and reference.main(["--check", "--output", str(stale)]) == 0


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _doc(out: str) -> dict:
    return json.loads(out)   # one document: json.loads refuses anything after it


def test_commands_that_act_print_one_json_document(db_env, capsys, monkeypatch) -> None:
    code, out, _ = _run(capsys, "agents", "register", "crawler", "--period", "10", "--json")
    assert code == 0
    token = _doc(out)["token"]
    monkeypatch.setenv("AGENTS_PIPELINE_AGENT_TOKEN", token)
    code, out, _ = _run(capsys, "heartbeat", "crawler", "--message", "hi", "--json")
    assert code == 0 and _doc(out)["agent"] == "crawler" and _doc(out)["kind"] == "ok"
    for action, field, value in (("pause", "paused", True), ("resume", "paused", False)):
        code, out, _ = _run(capsys, "agents", action, "crawler", "--json")
        assert code == 0 and _doc(out)[field] is value
    code, out, _ = _run(capsys, "agents", "capabilities", "crawler", "fetch", "parse", "--json")
    assert code == 0 and _doc(out)["capabilities"] == ["fetch", "parse"]
    code, out, _ = _run(capsys, "agents", "grant-keys", "crawler", "shared/", "--write", "--json")
    assert code == 0 and _doc(out) == {"agent": "crawler", "action": "grant-keys", "prefix": "shared/", "write": True}
    code, out, _ = _run(capsys, "agents", "rotate-token", "crawler", "--json")
    assert code == 0 and _doc(out)["token"].startswith("apt_") and _doc(out)["token"] != token
    code, out, err = _run(capsys, "agents", "revoke-token", "crawler", "--json")
    assert code == 0 and _doc(out)["action"] == "revoke-token" and err == ""
    code, out, _ = _run(capsys, "silence", "crawler", "--for", "1h", "--json")
    assert code == 0 and _doc(out)["silenced_until"]
    code, out, _ = _run(capsys, "db", "migrate", "--json")
    assert code == 0 and _doc(out)["applied"] == [] and _doc(out)["schema_version"] > 0
    code, out, _ = _run(capsys, "db", "status", "--json")
    assert code == 0 and _doc(out)["ok"] is True and _doc(out)["schema_applied"] == _doc(out)["schema_latest"]
    code, out, _ = _run(capsys, "perf", "set-threshold", "cpu_percent", "--above", "90", "--json")
    assert code == 0 and _doc(out) == {"scope": "fleet", "rule": "cpu_percent", "setting": {"above": 90.0}}


def test_a_check_that_finds_problems_exits_1_with_its_report(empty_db_url, capsys, monkeypatch) -> None:
    """`db status` on a database without the schema ran fine and found a problem: 1, not 2."""
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", empty_db_url)
    code, out, _ = _run(capsys, "db", "status", "--json")
    assert code == 1
    doc = _doc(out)
    assert doc["ok"] is False and doc["schema_applied"] == 0 and doc["schema_latest"] > 0
    code, out, _ = _run(capsys, "db", "status")
    assert code == 1 and "schema_applied: 0" in out


def test_could_not_run_exits_2_with_one_line_and_a_json_error(db_env, capsys) -> None:
    code, out, err = _run(capsys, "agents", "pause", "ghost", "--json")
    assert code == 2
    assert err == "agents-pipeline: unknown agent 'ghost'\n"
    assert _doc(out) == {"ok": False, "exit_code": 2, "error": "unknown agent 'ghost'"}
    code, out, err = _run(capsys, "perf", "rollup", "yesterday")
    assert code == 2 and out == "" and err.count("\n") == 1 and "is not an ISO time" in err


def test_database_unreachable_exits_2_with_one_line(tmp_path) -> None:
    """Nothing listens on the port: the command could not run (2), says so in one line, and
    never shows the password of the URL."""
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": "postgresql+psycopg2://op:s3cret-pw@127.0.0.1:9/fleet",
           "AGENTS_PIPELINE_RETRY_WINDOW_S": "0", "AGENTS_PIPELINE_HOME": str(tmp_path)}
    for args in (["status"], ["agents", "list", "--json"], ["archive", "pending"], ["perf", "thresholds"]):
        proc = subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("agents-pipeline: "), (args, proc.stderr)
        assert "127.0.0.1" in lines[0] and "s3cret-pw" not in proc.stderr + proc.stdout, (args, lines)
        if "--json" in args:
            assert json.loads(proc.stdout)["exit_code"] == 2
        else:
            assert proc.stdout == ""


# One real run of every command that takes --json, with the exit code it must give: 0 done,
# 1 a check found problems, 2 could not run. A new command that takes --json must add its run
# here (the test below fails until it does). Each runs on a fresh database where the agent
# `crawler` is registered and its token set; {tmp} is the test's own folder.
NO_ARCHIVE_DAY = "2020-01-01"
JSON_RUNS: dict[str, tuple[list[str], set[int]]] = {
    "agents-pipeline db up": (["db", "up"], {0}),                  # a URL is configured: nothing started
    "agents-pipeline db down": (["db", "down"], {0}),              # no local cluster in {tmp}: "not running"
    "agents-pipeline db status": (["db", "status"], {0}),
    "agents-pipeline db migrate": (["db", "migrate"], {0}),
    "agents-pipeline db backup": (["db", "backup", "{tmp}/b.dump"], {0}),
    "agents-pipeline db restore": (["db", "restore", "{tmp}/missing.dump"], {2}),
    "agents-pipeline db grant-agent": (["db", "grant-agent"], {0}),
    "agents-pipeline agents register": (["agents", "register", "indexer", "--period", "30"], {0}),
    "agents-pipeline agents list": (["agents", "list"], {0}),
    "agents-pipeline agents pause": (["agents", "pause", "crawler"], {0}),
    "agents-pipeline agents resume": (["agents", "resume", "crawler"], {0}),
    "agents-pipeline agents rotate-token": (["agents", "rotate-token", "crawler"], {0}),
    "agents-pipeline agents revoke-token": (["agents", "revoke-token", "crawler"], {0}),
    "agents-pipeline agents ping-url": (["agents", "ping-url", "crawler"], {0}),
    "agents-pipeline agents rotate-ping-key": (["agents", "rotate-ping-key", "crawler"], {0}),
    "agents-pipeline agents grant-keys": (["agents", "grant-keys", "crawler", "shared/"], {0}),
    "agents-pipeline agents revoke-keys": (["agents", "revoke-keys", "crawler", "shared/"], {2}),   # no such grant
    "agents-pipeline agents capabilities": (["agents", "capabilities", "crawler", "fetch"], {0}),
    "agents-pipeline heartbeat": (["heartbeat", "crawler"], {0}),
    "agents-pipeline status": (["status"], {0}),
    "agents-pipeline alerts": (["alerts", "--open"], {0}),
    "agents-pipeline silence": (["silence", "crawler", "--for", "30m"], {0}),
    "agents-pipeline perf sample": (["perf", "sample", "--no-remote"], {0}),
    "agents-pipeline perf thresholds": (["perf", "thresholds", "--agent", "crawler"], {0}),
    "agents-pipeline perf set-threshold": (["perf", "set-threshold", "cpu_percent", "--agent", "crawler",
                                            "--above", "80"], {0}),
    "agents-pipeline perf rollup": (["perf", "rollup", "2026-03-01T10:00"], {2}),   # no samples in that hour
    "agents-pipeline langsmith status": (["langsmith", "status"], {0}),
    "agents-pipeline soak": (["soak", "--minutes", "1"], {2}),        # too short: refused before starting anything
    "agents-pipeline fleet plan": (["fleet", "plan", "{tmp}/missing.yaml"], {2}),
    "agents-pipeline fleet apply": (["fleet", "apply", "{tmp}/missing.yaml"], {2}),
    "agents-pipeline fleet export": (["fleet", "export", "--output", "{tmp}/fleet.yaml"], {0}),
    "agents-pipeline api-key create": (["api-key", "create", "grafana"], {0}),
    "agents-pipeline api-key revoke": (["api-key", "revoke", "nobody"], {2}),       # no such key
    "agents-pipeline api-key list": (["api-key", "list"], {0}),
    "agents-pipeline demo-history": (["demo-history", "--days", "1", "--no-report"], {0}),
    "agents-pipeline langsmith sync": (["langsmith", "sync"], {2}),   # LANGSMITH_API_KEY unset
    "agents-pipeline langsmith push": (["langsmith", "push"], {2}),
    "agents-pipeline archive policy": (["archive", "policy"], {0}),
    "agents-pipeline archive pending": (["archive", "pending"], {0}),
    "agents-pipeline archive list": (["archive", "list"], {0}),
    "agents-pipeline archive run": (["archive", "run", "heartbeats", NO_ARCHIVE_DAY], {0}),   # no data: no_data
    "agents-pipeline archive restore": (["archive", "restore", "heartbeats", NO_ARCHIVE_DAY], {2}),   # no archive
    "agents-pipeline archive maintain": (["archive", "maintain"], {0}),
    "agents-pipeline migrate-sqlite": (["migrate-sqlite", "{tmp}/missing.sqlite"], {2}),
    "agents-pipeline ask": (["ask", "why is crawler down?", "--no-llm"], {0}),
    "agents-pipeline security grant-agent": (["security", "grant-agent"], {0}),
    "agents-pipeline security audit": (["security", "audit"], {0, 1}),   # a copied database may lack revokes
    "agents-pipeline readiness": (["readiness", "--skip-dagster"], {0, 1}),
    "agents-pipeline demo-seed": (["demo-seed", "--agents", "1", "--days", "1"], {0}),
    "agents-pipeline demo-kickoff": (["demo-kickoff", "--dry-run"], {0}),
    "agents-pipeline launch": (["launch", "some_job", "--ui", "http://127.0.0.1:9", "--no-wait"], {2}),
}
JSON_LEAVES = [prog for prog in LEAVES if prog not in WITHOUT_JSON]


def test_every_command_with_json_has_a_run_below() -> None:
    missing = sorted(set(JSON_LEAVES) - set(JSON_RUNS))
    assert not missing, f"add a representative run of {missing} to JSON_RUNS"
    assert not set(JSON_RUNS) - set(JSON_LEAVES), "JSON_RUNS names a command that no longer exists"


@pytest.mark.parametrize("prog", sorted(JSON_RUNS))
def test_every_command_exits_0_1_or_2_with_one_json_document(prog, db_env, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AGENTS_PIPELINE_HOME", str(tmp_path / "home"))        # never a real local cluster
    monkeypatch.setenv("AGENTS_PIPELINE_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    monkeypatch.delenv("AGENTS_PIPELINE_RETENTION", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["agents", "register", "crawler", "--json"]) == 0
    monkeypatch.setenv("AGENTS_PIPELINE_AGENT_TOKEN", json.loads(capsys.readouterr().out)["token"])
    argv, expected = JSON_RUNS[prog]
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code in expected, f"{prog}: exit {code}, expected {expected}; stderr: {err}"
    doc = json.loads(out)   # exactly one document: json.loads refuses anything after it
    if code == 2:
        assert doc["ok"] is False and doc["exit_code"] == 2 and doc["error"]
        assert err.count("\n") == 1 and err.startswith("agents-pipeline: "), err
    if code == 1:
        assert isinstance(doc, dict) and (doc.get("ok") is False or doc.get("ready") is False), doc


def test_a_restore_that_does_not_match_its_backup_exits_1(db_env, empty_db_url, tmp_path, capsys, monkeypatch) -> None:
    """The restore ran; its verification found a difference: 1 (a problem found), not 2."""
    assert main(["agents", "register", "crawler"]) == 0
    assert main(["db", "backup", str(tmp_path / "b.dump")]) == 0
    sidecar = tmp_path / "b.dump.json"
    info = json.loads(sidecar.read_text())
    info["tables"]["fleet.agents"] = "2:12345"   # the backup "said" two agents
    sidecar.write_text(json.dumps(info))
    capsys.readouterr()
    monkeypatch.setenv("AGENTS_PIPELINE_RESTORE_DATABASE_URL", empty_db_url)
    code, out, err = _run(capsys, "db", "restore", str(tmp_path / "b.dump"), "--json")
    assert code == 1
    assert err == "agents-pipeline: restored database differs from the backup in fleet.agents\n"
    assert _doc(out) == {"ok": False, "exit_code": 1, "error": "restored database differs from the backup in fleet.agents"}
