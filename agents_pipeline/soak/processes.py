"""The stack's processes, each started in its own session and restarted after a ``kill -9`` the
way a process supervisor (systemd, Kubernetes) would: same command, same environment, new pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    cwd: Path | None = None
    proc: subprocess.Popen | None = None
    starts: list[float] = field(default_factory=list)   # wall-clock start times
    kills: list[float] = field(default_factory=list)

    def start(self) -> None:
        log = open(self.log_dir / f"{self.name}.log", "ab")
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.starts.append(time.time())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def kill9(self) -> float:
        """SIGKILL to the whole session (a `dagster api grpc` or daemon has children); returns when."""
        when = time.time()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.kills.append(when)
        return when

    def signal(self, signum: int) -> None:
        if self.pid is not None:
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
