"""sql/ and sql/functions/ ship in the installed package (issue #20).

A wheel is built from a copy of the project (building in place would leave build/ and a
rewritten agents_pipeline.egg-info in the clone), installed into a folder of its own, and run
with the clone out of reach: no site hooks (the editable install's finder maps the package to
the clone), no current folder on the path. Everything else is the virtualenv's.

Guards against a wheel that carries the numbered migrations but not sql/functions/ (or a stale
copy of them): installed with pip, the product would bring up a schema without the agent API,
which the tests on the clone, reading sql/ straight from the project folder, would never show.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Folders a copy of the project leaves out when git cannot list its files (a source tarball).
_NOT_PROJECT = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
                "test-artifacts")

# Run inside the installed package: where it was imported from and where it looks for sql/.
_PROBE = """
import json, sys
import agents_pipeline
from agents_pipeline.core import settings
try:
    import agents_pipeline_tests
    clone = agents_pipeline_tests.__file__
except ImportError:
    clone = None
files = sorted(p.relative_to(settings.SQL_DIR).as_posix() for p in settings.SQL_DIR.rglob("*") if p.is_file())
print(json.dumps({"package": agents_pipeline.__file__, "sql_dir": str(settings.SQL_DIR), "files": files,
                  "clone": clone, "path": sys.path}))
"""


@dataclass(frozen=True)
class Installed:
    site: Path              # the --target folder the wheel was installed into
    workdir: Path           # an empty folder to run in
    sql_dir: Path           # sql/ of the copy of the project the wheel was built from
    sql_files: list[str]    # its files, relative to it

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Python with only the installed package and the virtualenv's packages importable."""
        path = os.pathsep.join([str(self.site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": path}
        full_env.pop("AGENTS_PIPELINE_AGENT_TOKEN", None)
        return subprocess.run([sys.executable, "-S", "-P", *args], cwd=self.workdir, env=full_env,
                              capture_output=True, text=True, timeout=120)


def _project_files() -> list[str]:
    """The project's files, relative to it: git's tracked and new ones, the ignored left out."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=PROJECT_DIR, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [name for name in listed.decode().split("\0") if name and (PROJECT_DIR / name).is_file()]


def _copy_project(dest: Path) -> None:
    files = _project_files()
    if not files:
        shutil.copytree(PROJECT_DIR, dest, ignore=shutil.ignore_patterns(*_NOT_PROJECT), symlinks=True)
        return
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, target)


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _setuptools_version() -> tuple[int, int]:
    # Read from its metadata: importing setuptools here would patch distutils for the whole session.
    major, minor = importlib.metadata.version("setuptools").split(".")[:2]
    return int(major), int(minor)


def _can_build_wheels() -> bool:
    """setuptools builds wheels itself from 70.1; before that it needs the wheel package."""
    return _setuptools_version() >= (70, 1) or importlib.util.find_spec("wheel") is not None


def missing_or_changed(source: Path, expected: list[str], installed: Path, found: list[str]) -> list[str]:
    """The files of ``source`` (relative names ``expected``) that are not in ``installed`` (whose
    files are ``found``) with the same bytes, and any file there that the source does not have."""
    problems = [f"missing: {name}" for name in expected if name not in found]
    problems += [f"not in the project: {name}" for name in found if name not in expected]
    problems += [f"different bytes: {name}" for name in expected
                 if name in found and (installed / name).read_bytes() != (source / name).read_bytes()]
    return problems


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not _can_build_wheels():
        pytest.fail("the virtualenv cannot build a wheel offline: setuptools before 70.1 needs the wheel "
                    "package (pip install wheel==0.45.1)")
    root = tmp_path_factory.mktemp("installed-package")
    source, dist, site, workdir = root / "source", root / "dist", root / "site", root / "run"
    workdir.mkdir()
    _copy_project(source)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir", "-w", str(dist), str(source),
         cwd=workdir)
    wheels = sorted(dist.glob("agents_pipeline-*.whl"))
    assert len(wheels) == 1, wheels
    _pip("install", "--no-deps", "--no-index", "--no-cache-dir", "--target", str(site), str(wheels[0]), cwd=workdir)
    sql_dir = source / "sql"
    sql_files = sorted(p.relative_to(sql_dir).as_posix() for p in sql_dir.rglob("*") if p.is_file())
    return Installed(site, workdir, sql_dir, sql_files)


def _rows(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_installed_package_carries_every_sql_file_byte_for_byte(installed: Installed) -> None:
    """A wheel missing sql/functions/ (or carrying a stale copy) would install without complaint."""
    done = installed.run("-c", _PROBE)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    package = installed.site / "agents_pipeline"
    assert Path(probe["package"]) == package / "__init__.py"
    assert probe["clone"] is None, f"the clone was importable: {probe['path']}"
    assert str(PROJECT_DIR) not in probe["path"]
    sql_dir = Path(probe["sql_dir"])
    assert sql_dir == package / "bundled_sql"
    assert [n for n in installed.sql_files if n.startswith("functions/")], "the project has no sql/functions/"
    assert missing_or_changed(installed.sql_dir, installed.sql_files, sql_dir, probe["files"]) == []


def test_the_installed_command_migrates_an_empty_database_with_every_function_file(
        installed: Installed, empty_db_url: str) -> None:
    """The operator's first command after `pip install`: it must find the schema inside the package."""
    command = installed.site / "bin" / "agents-pipeline"
    done = installed.run(str(command), "db", "migrate", env={"AGENTS_PIPELINE_DATABASE_URL": empty_db_url})
    assert done.returncode == 0, done.stderr
    expected = migrations.available(installed.sql_dir)
    functions = migrations.function_files(installed.sql_dir / "functions")
    assert done.stdout.splitlines() == [f"applied {m.path.name}" for m in expected] + [
        f"applied functions/{name}" for name in functions]
    assert _rows(empty_db_url, "SELECT version, checksum FROM public.agents_pipeline_migrations ORDER BY 1") == [
        (m.version, m.checksum) for m in expected]
    assert expected[-1].version == migrations.latest_version(installed.sql_dir)
    ledger = dict(_rows(empty_db_url, "SELECT name, checksum FROM public.agents_pipeline_functions"))
    assert ledger == {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in functions.items()}


def test_a_function_file_left_out_of_the_wheel_is_reported(tmp_path: Path) -> None:
    """The comparison above fails when the wheel lacks a function file, carries an old copy of
    one, or carries one the project no longer has (checked here without building a wheel)."""
    source, installed = tmp_path / "source", tmp_path / "installed"
    for folder in (source, installed):
        (folder / "functions").mkdir(parents=True)
        (folder / "0001_core.sql").write_text("CREATE SCHEMA fleet;")
        (folder / "functions" / "kv_get.sql").write_text("CREATE FUNCTION fleet.kv_get() ...")
    (source / "functions" / "kv_set.sql").write_text("CREATE FUNCTION fleet.kv_set() ...")
    expected = ["0001_core.sql", "functions/kv_get.sql", "functions/kv_set.sql"]
    found = ["0001_core.sql", "functions/kv_get.sql"]
    assert missing_or_changed(source, expected, installed, found) == ["missing: functions/kv_set.sql"]
    (installed / "functions" / "kv_get.sql").write_text("CREATE FUNCTION fleet.kv_get() -- old")
    (installed / "functions" / "gone.sql").write_text("")
    assert missing_or_changed(source, expected, installed, [*found, "functions/gone.sql"]) == [
        "missing: functions/kv_set.sql", "not in the project: functions/gone.sql",
        "different bytes: functions/kv_get.sql"]
