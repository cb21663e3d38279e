"""The whole stack as production runs it, on a throwaway PostgreSQL: the code server, the daemon
and the webserver as separate processes (so each can be killed alone), the agent API, and hosts
of soak agents registered like real ones (half heartbeat over SQL, half ping over HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents_pipeline.core import settings
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import make_url
from agents_pipeline.core.localdb import APP_DB, LocalCluster, free_port, scratch_home
from agents_pipeline.core.ping_keys import ping_url
from agents_pipeline.core.registry import register_agent
from agents_pipeline.soak import plan
from agents_pipeline.soak.agent_host import SPEC_ENV
from agents_pipeline.soak.processes import Component
from agents_pipeline.soak.receiver import Receiver

BIN = Path(sys.executable).parent
WEBHOOK_URL = "AGENTS_PIPELINE_ALERT_WEBHOOK_URL"   # defs.alerts.channels.WEBHOOK_URL


@dataclass
class Stack:
    out: Path
    agents: int
    agents_per_host: int = 4
    cluster: LocalCluster | None = None
    url: str = ""
    receiver: Receiver = field(default_factory=Receiver)
    services: dict[str, Component] = field(default_factory=dict)
    hosts: list[Component] = field(default_factory=list)
    host_agents: dict[str, list[str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    # -- start ------------------------------------------------------------------------------------
    def start_database(self) -> None:
        import psycopg2

        from agents_pipeline.core import migrations
        from agents_pipeline.core.dsn import connect_kwargs

        self.cluster = LocalCluster(scratch_home("agents-pipeline-soak-"))
        self.url = self.cluster.up()
        conn = psycopg2.connect(**connect_kwargs(self.url))
        try:
            migrations.migrate(conn)
        finally:
            conn.close()

    def _env(self) -> dict[str, str]:
        home = self.out / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
        (home / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.ports['code_server']}\n      location_name: agents_pipeline\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AGENTS_PIPELINE_DAGSTER"))}
        env.update({settings.DATABASE_URL: self.url, "DAGSTER_HOME": str(home), WEBHOOK_URL: self.receiver.url,
                    "AGENTS_PIPELINE_API_URL": f"http://127.0.0.1:{self.ports['api']}"})
        return env

    def start_services(self) -> None:
        self.receiver.start()
        self.ports = {name: free_port() for name in ("code_server", "webserver", "api")}
        env = self._env()
        home = env["DAGSTER_HOME"]
        workspace = str(Path(home) / "workspace.yaml")
        commands = {
            "code_server": [str(BIN / "dagster"), "api", "grpc", "-m", "agents_pipeline.definitions",
                            "--location-name", "agents_pipeline", "-h", "127.0.0.1", "-p", str(self.ports["code_server"])],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
            "webserver": [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                          "-p", str(self.ports["webserver"])],
            "api": [sys.executable, "-m", "agents_pipeline.cli.main", "api", "--host", "127.0.0.1",
                    "--port", str(self.ports["api"])],
        }
        for name, argv in commands.items():
            self.services[name] = Component(name, argv, env, self.out, cwd=settings.PROJECT_DIR)
            self.services[name].start()

    def start_agents(self) -> None:
        env = self._env()
        db = Database(self.url, maxconn=1, application_name="agents_pipeline:soak")
        try:
            specs = []
            for i in range(self.agents):
                name = f"soak-{i:04d}"
                reg = register_agent(db, name, period_s=plan.PERIOD_S, grace_s=plan.GRACE_S, agent_type="soak")
                over_http = (i // self.agents_per_host) % 2 == 1
                if over_http:
                    specs.append({"name": name, "period_s": plan.PERIOD_S,
                                  "ping_url": ping_url(reg.ping_key, env["AGENTS_PIPELINE_API_URL"])})
                else:   # the agent's own login over TCP, its token the password, as on an agent host
                    login = make_url(APP_DB, user=reg.login, host="127.0.0.1", port=self.cluster.state()["port"])
                    specs.append({"name": name, "period_s": plan.PERIOD_S, "token": reg.token, "url": login})
        finally:
            db.close()
        (self.out / "ledgers").mkdir(exist_ok=True)
        for j in range(0, len(specs), self.agents_per_host):
            group = specs[j:j + self.agents_per_host]
            name = f"agents-{j // self.agents_per_host:03d}"
            host_env = {**env, SPEC_ENV: json.dumps(group)}
            argv = [sys.executable, "-m", "agents_pipeline.soak.agent_host",
                    "--ledger", str(self.out / "ledgers" / f"{name}.tsv"), "--burst-seconds", str(plan.BURST_S)]
            host = Component(name, argv, host_env, self.out / "ledgers")
            host.start()
            self.hosts.append(host)
            self.host_agents[name] = [s["name"] for s in group]

    def wait_until_up(self, timeout_s: float = 240.0) -> float:
        """Until every soak agent is up (the evaluator has run and seen them all); returns the time taken."""
        began = time.monotonic()
        db = Database(self.url, maxconn=1, application_name="agents_pipeline:soak")
        try:
            while time.monotonic() - began < timeout_s:
                up = db.transaction(lambda cur: (cur.execute(
                    "SELECT count(*) FILTER (WHERE status = 'up'), count(*) FROM fleet.agents "
                    "WHERE agent_type = 'soak'"), cur.fetchone())[1])
                if up[0] == up[1] == self.agents:
                    return time.monotonic() - began
                time.sleep(2.0)
        finally:
            db.close()
        raise TimeoutError(f"the soak agents were not all up after {timeout_s:.0f} s "
                           f"(see {self.out}/daemon.log and code_server.log)")

    # -- what the sampler watches -----------------------------------------------------------------
    def postgres_pid(self) -> int | None:
        try:
            return int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, AttributeError):
            return None

    def pause_database(self) -> None:
        """SIGSTOP the server and every backend: what clients see of a paused virtual machine or
        a stalled disk (the second long soak met one: 28 s, no process on the host running)."""
        import psutil

        pid = self.postgres_pid()
        if pid is None:
            raise RuntimeError("no postmaster.pid: the soak's PostgreSQL is not running")
        root = psutil.Process(pid)
        self._paused = [root, *root.children(recursive=True)]
        for proc in self._paused:
            proc.send_signal(signal.SIGSTOP)

    def resume_database(self) -> None:
        import psutil

        for proc in getattr(self, "_paused", []):
            try:
                proc.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
        self._paused = []

    def pids(self) -> dict[str, int | None]:
        out = {"postgres": self.postgres_pid(), **{n: c.pid for n, c in self.services.items()}}
        out.update({h.name: h.pid for h in self.hosts})
        return out

    # -- stop -------------------------------------------------------------------------------------
    def stop_agents(self) -> None:
        for host in self.hosts:
            host.stop(timeout=10)

    def stop(self) -> None:
        self.stop_agents()
        for component in reversed(list(self.services.values())):
            component.stop()
        self.receiver.stop()
        if self.cluster is not None:
            self.cluster.destroy()
