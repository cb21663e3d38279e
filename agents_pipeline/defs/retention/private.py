"""Archives and backups readable by their owner only: files 0600 in folders 0700, whatever the umask.

They hold the fleet's whole history (LLM prompts and responses, alert texts, the agents'
payloads): with the usual umask of 022 every local user could read them. A file is created
with its final mode (``os.open`` with 0600, then ``fchmod`` for a file that already existed),
never chmod-ed after being written, so there is no moment in which another user could open it;
the atomic renames keep the mode, since a rename keeps the inode.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def _make_missing(folder: Path) -> bool:
    """Creates ``folder`` and its missing parents as 0700; True when ``folder`` was created."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR)
        except FileExistsError:      # created meanwhile by another process: tightened below if ours
            continue
        os.chmod(path, PRIVATE_DIR)  # the umask may have removed bits the owner needs
    return bool(missing)


def private_dir(folder: Path, base: Path, *, own_base: bool = False) -> Path:
    """Makes ``folder`` (``base`` or a folder below it) exist, readable by its owner only.

    Every folder below ``base`` is the product's own (table / year / month of the archive), so
    an existing one made by an earlier version with 0755 is set to 0700 too. ``base`` itself is
    set to 0700 when created here or when ``own_base`` (the product's default folders in the
    project); a folder the operator named and made is left as they made it."""
    folder, base = Path(folder), Path(base)
    created = _make_missing(base)
    if created or own_base:
        os.chmod(base, PRIVATE_DIR)
    current = base
    for part in folder.relative_to(base).parts:
        current = current / part
        try:
            os.mkdir(current, PRIVATE_DIR)
        except FileExistsError:
            pass
        os.chmod(current, PRIVATE_DIR)
    return folder


def open_private(path: Path) -> int:
    """A file descriptor for writing ``path`` from empty, mode 0600 from its first instant.

    ``O_NOFOLLOW``: a symbolic link planted under the temporary name is refused, not written
    through."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an existing file keeps its old mode on open
    except BaseException:
        os.close(fd)
        raise
    return fd
