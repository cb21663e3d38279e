"""The code server's image, tested where no image can be built (issue #23).

The Dockerfile's install steps are one script, deploy/install.sh; the slow test runs it into a
fresh virtual environment from a copy of the project and loads the code location from there,
with the clone out of reach. The fast tests keep the files that must agree in agreement: the
pins of deploy/requirements.txt with pyproject.toml's, deploy/helm/values.yaml's instance
settings with deploy/dagster.yaml's, and the Dockerfile with what DEPLOY.md promises of it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from agents_pipeline.core import settings
from agents_pipeline_tests.core.test_installed_package import _copy_project

PROJECT = settings.PROJECT_DIR
DEPLOY = PROJECT / "deploy"
#: deploy/dagster.yaml's blocks the Helm values repeat word for word.
INSTANCE_BLOCKS = ("run_coordinator", "concurrency", "run_monitoring", "run_retries")


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"deploy/requirements.txt: {line!r} is not pinned with =="
            pins[_name(name)] = version
    return pins


def test_the_image_pins_what_pyproject_pins_and_nothing_for_tests():
    """A pin bumped in pyproject.toml but not here would build an image with the old version."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    wanted = {_name(dep): dep.split("==", 1)[1] for dep in project["dependencies"]}
    assert {name: pins.get(name) for name in wanted} == wanted
    dev = {_name(dep) for dep in project["optional-dependencies"]["dev"]}
    assert sorted(dev & set(pins)) == []
    assert "agents-pipeline" not in pins


def test_the_helm_values_repeat_the_deploy_instance_settings():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    extra = values["additionalInstanceConfig"]
    assert {key: extra.get(key) for key in INSTANCE_BLOCKS} == {key: instance[key] for key in INSTANCE_BLOCKS}
    daemon = values["dagsterDaemon"]
    # The chart's own rendering of these is off, or the instance would hold each block twice.
    assert [daemon[key]["enabled"] for key in ("runCoordinator", "runMonitoring", "runRetries")] == [False] * 3
    assert {"use_threads": daemon["sensors"]["useThreads"], "num_workers": daemon["sensors"]["numWorkers"]} == \
        instance["sensors"]
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert location["dagsterApiGrpcArgs"][:2] == ["-m", "agents_pipeline.definitions"]
    assert location["podSecurityContext"]["runAsNonRoot"] is True
    secrets = {s["name"] for s in location["envSecrets"]}
    assert secrets == {s["name"] for s in values["dagsterDaemon"]["envSecrets"]} == {
        s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}


def test_the_dockerfile_installs_with_the_script_and_runs_unprivileged():
    text = (PROJECT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.MULTILINE)
    assert len(stages) == 2 and stages[0][1] == "build", stages
    assert re.search(r"^RUN deploy/install\.sh /opt/agents-pipeline /src$", text, flags=re.MULTILINE)
    assert "COPY --from=build /opt/agents-pipeline /opt/agents-pipeline" in text
    assert '"postgresql-client-${PG_MAJOR}"' in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in text
    assert '"-m", "agents_pipeline.definitions", "--location-name", "agents_pipeline"' in text
    # .dockerignore keeps the build context small by naming what may go in: every COPY source.
    admitted = {line[1:].rstrip("/") for line in (PROJECT / ".dockerignore").read_text().splitlines()
                if line.startswith("!")}
    sources = {src.rstrip("/") for args in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE)
               for src in args.split()[:-1]}
    assert sources and sources <= admitted, sorted(sources - admitted)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_install_script_builds_a_working_code_server_environment(tmp_path: Path):
    """The image's install steps, in a fresh virtual environment: the pinned stack installs,
    `pip check` passes, and `dagster definitions validate` loads the code location from the new
    environment (not from the clone) with no database and no variable.

    Regression: installed (not editable), the location failed to load: Dagster's defs-folder
    loader looks for pyproject.toml above the package, and site-packages has none."""
    source, venv, neutral = tmp_path / "source", tmp_path / "venv", tmp_path / "run"
    neutral.mkdir()
    _copy_project(source)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AGENTS_PIPELINE_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV"))}
    # The interpreter this virtualenv was made from: python3.11, as in the image.
    env["PYTHON"] = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    done = subprocess.run([str(source / "deploy" / "install.sh"), str(venv), str(source)], env=env,
                          capture_output=True, text=True, timeout=1100, cwd=neutral)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert f"agents_pipeline.definitions loads from {site / 'agents_pipeline' / 'definitions.py'}" in done.stdout

    validate = subprocess.run([str(venv / "bin" / "dagster"), "definitions", "validate", "-m",
                               "agents_pipeline.definitions"],
                              env=env, cwd=neutral, capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert "Validation successful for code location agents_pipeline.definitions" in validate.stdout + validate.stderr
    frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "agents_pipeline"],
                            env=env, capture_output=True, text=True, timeout=120).stdout
    installed = {_name(line): line.split("==", 1)[1] for line in frozen.splitlines() if "==" in line}
    assert installed == _pins()   # exactly the pinned stack: nothing more, nothing else
