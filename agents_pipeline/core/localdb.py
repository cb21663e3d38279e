"""The project-local PostgreSQL cluster used when no database URL is configured.

Written by hand on top of initdb/pg_ctl rather than with a library (pytest-postgresql,
testing.postgresql) because none of them handles the two things this needs: running the
server as the ``postgres`` user when invoked as root, and keeping a long-lived cluster whose
port and socket survive between ``db up`` calls. The same class starts the throwaway
clusters of the test suite.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agents_pipeline.core.dsn import make_url
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.settings import PG_BIN, project_home

APP_DB = "agents_pipeline"
DAGSTER_DB = "dagster"
SUPERUSER = "postgres"


def find_pg_bin(install: bool = True) -> Path:
    """The directory holding initdb and pg_ctl; installs Debian's server package as root."""
    explicit = os.environ.get(PG_BIN)
    if explicit:
        if (Path(explicit) / "pg_ctl").exists():
            return Path(explicit)
        raise ConfigurationError(f"{PG_BIN}={explicit} holds no pg_ctl")

    def version(path: str) -> float:
        match = re.search(r"postgresql/(\d+(?:\.\d+)?)/bin", path)
        return float(match.group(1)) if match else 0.0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for cand in candidates:
        if (Path(cand) / "pg_ctl").exists() and (Path(cand) / "initdb").exists():
            return Path(cand)
    which = shutil.which("pg_ctl")
    if which and shutil.which("initdb"):
        return Path(which).resolve().parent
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql", "postgresql-contrib"],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
        return find_pg_bin(install=False)
    raise ConfigurationError(
        "PostgreSQL server binaries not found: install them (Debian: apt-get install -y postgresql) "
        "or set AGENTS_PIPELINE_DATABASE_URL to an existing server"
    )


def scratch_home(prefix: str) -> Path:
    """A new folder under /tmp for a throwaway cluster (tests, benchmarks), handed to the
    server user when running as root, since PostgreSQL refuses to run as root."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(home, 0o755)
    if os.geteuid() == 0:
        shutil.chown(home, SUPERUSER, SUPERUSER)
    return home


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port``: it binds with SO_REUSEADDR, so connections of
    its previous run lingering in TIME_WAIT do not count (without it a quick down/up moved the
    cluster to a new port, and every client holding the old URL lost it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in ``home``: data, socket, log and a small state file."""

    home: Path
    extra_settings: tuple[str, ...] = ()

    @classmethod
    def default(cls) -> LocalCluster:
        return cls(project_home())

    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def sockdir(self) -> Path:
        return self.home / "run"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    @property
    def statefile(self) -> Path:
        return self.home / "cluster.json"

    # -- running commands as the right user --------------------------------------------------
    def _as_server_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []}

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(
            args, cwd=self.home, env=env, capture_output=True, text=True, **self._as_server_user()
        )
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ConfigurationError(f"{Path(args[0]).name} failed: {' | '.join(tail)}")
        return proc

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SUPERUSER, SUPERUSER)

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads(self.statefile.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_state(self, state: dict) -> None:
        tmp = self.statefile.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.statefile)

    # -- lifecycle -----------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not (self.datadir / "PG_VERSION").exists():
            return False
        bindir = Path(self.state().get("bindir") or find_pg_bin())
        return self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.datadir)], check=False).returncode == 0

    def init(self) -> None:
        bindir = find_pg_bin()
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The parent folders must be traversable by the server user.
            for parent in [self.home, *self.home.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001 and parent != self.home:
                    os.chmod(parent, mode | 0o001)
        self._chown(self.home)
        os.chmod(self.home, 0o700)
        self.sockdir.mkdir(exist_ok=True)
        self._chown(self.sockdir)
        os.chmod(self.sockdir, 0o700)
        password = secrets.token_urlsafe(24)
        pwfile = self.home / "superuser.password"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        self._run([
            str(bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ])
        self._save_state({"bindir": str(bindir), "port": free_port()})

    def up(self) -> str:
        """Initialise if needed, start if stopped, create the databases; returns the app URL."""
        if not (self.datadir / "PG_VERSION").exists():
            self.init()
        state = self.state()
        bindir = Path(state.get("bindir") or find_pg_bin())
        if not self.is_running():
            port = state.get("port") or free_port()
            if not _port_is_free(port):
                port = free_port()
            state.update(port=port, bindir=str(bindir))
            self._save_state(state)
            options = [
                f"-p {port}", f"-k {self.sockdir}", "-c listen_addresses=127.0.0.1",
                "-c max_connections=300", *(f"-c {s}" for s in self.extra_settings),
            ]
            self._run([
                str(bindir / "pg_ctl"), "start", "-D", str(self.datadir), "-w", "-t", "60",
                "-l", str(self.logfile), "-o", " ".join(options),
            ])
        self.create_databases()
        return self.url()

    def down(self) -> bool:
        if not self.is_running():
            return False
        bindir = Path(self.state().get("bindir") or find_pg_bin())
        self._run([str(bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60"])
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster (the test suite's throwaway clusters)."""
        self.down()
        shutil.rmtree(self.home, ignore_errors=True)

    def url(self, dbname: str = APP_DB) -> str:
        state = self.state()
        if "port" not in state:
            raise ConfigurationError(f"no local cluster in {self.home}: run `agents-pipeline db up`")
        return make_url(dbname, user=SUPERUSER, host=str(self.sockdir), port=int(state["port"]))

    def create_databases(self) -> None:
        import psycopg2

        state = self.state()
        conn = psycopg2.connect(dbname="postgres", user=SUPERUSER, host=str(self.sockdir), port=state["port"])
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in (APP_DB, DAGSTER_DB):
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def status(self) -> dict:
        state = self.state()
        return {
            "home": str(self.home),
            "initialised": (self.datadir / "PG_VERSION").exists(),
            "running": self.is_running(),
            "port": state.get("port"),
            "socket_dir": str(self.sockdir),
            "url": self.url() if "port" in state else None,
            "log": str(self.logfile),
        }
