"""The one folder the Dagster job may read legacy files from: ``AGENTS_PIPELINE_IMPORT_DIR``.

The job's path is run config, typed by whoever can use the Launchpad, and the code location
reads it with its own rights: without a fence it would open any SQLite file on the host (another
service's database, a user's browser history) and copy it into the ``legacy`` schema for
anyone with the UI to read. The CLI ``migrate-sqlite PATH`` is not fenced: it runs as the
operator, on files the operator can read anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents_pipeline.core.errors import ConfigurationError, ValidationError

IMPORT_DIR_ENV = "AGENTS_PIPELINE_IMPORT_DIR"


def import_dir() -> Path:
    """The import folder, resolved (symbolic links and '..' followed); refused when unset or missing."""
    raw = os.environ.get(IMPORT_DIR_ENV, "").strip()
    if not raw:
        raise ConfigurationError(
            f"{IMPORT_DIR_ENV} is not set: sqlite_migration_job reads legacy files only from that folder; "
            "set it to the folder holding the files to import (`make run` uses <project>/import), or run "
            "`agents-pipeline migrate-sqlite PATH` from a shell")
    folder = Path(raw).expanduser()
    if not folder.is_absolute():   # the same folder whatever the process's working directory
        from agents_pipeline.core.settings import PROJECT_DIR

        folder = PROJECT_DIR / folder
    if not folder.is_dir():
        raise ConfigurationError(f"{IMPORT_DIR_ENV} names {folder}, which is not a folder")
    return folder.resolve()


def import_path(requested: str | Path) -> Path:
    """The legacy file the job may read: ``requested`` (absolute, or relative to the import folder)
    with symbolic links and '..' resolved, refused unless it is inside the import folder.

    Resolving first is what makes the check hold: ``<dir>/../x`` and a symbolic link in the
    folder pointing out of it are refused like ``/x``. The resolved path is what is opened,
    and a ``-wal`` file is looked for beside it, so inside the folder too."""
    folder = import_dir()
    candidate = Path(requested).expanduser()
    resolved = (candidate if candidate.is_absolute() else folder / candidate).resolve()
    if not resolved.is_relative_to(folder) or resolved == folder:
        raise ValidationError(
            f"{str(requested)!r} is not a file inside {IMPORT_DIR_ENV} ({folder}) once symbolic links and '..' "
            "are resolved: the job reads legacy files only from there; copy the file into that folder, or run "
            "`agents-pipeline migrate-sqlite PATH` from a shell")
    return resolved
