"""Run a command with stderr on a pseudo-terminal and stdout on a pipe, as an operator's shell
with `| jq` would: what the progress bar needs to appear, and what `--json` must survive."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading


def run_with_terminal_stderr(args: list[str], env: dict[str, str] | None = None,
                             timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal showed on stderr)."""
    master, slave = pty.openpty()
    # A fresh pty is 0x0; a terminal window is not (tqdm sizes its bar to it).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=env if env is not None else os.environ.copy())
    os.close(slave)
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # EIO: the child closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(timeout=10)
        os.close(master)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


CLI = [sys.executable, "-m", "agents_pipeline.cli.main"]
