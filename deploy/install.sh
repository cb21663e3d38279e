#!/bin/sh
# Installs the code server's Python stack into a virtual environment: the pinned dependencies of
# deploy/requirements.txt, then this project (no dependency resolution left to chance), then a
# check that the code location loads with nothing but that environment (no database, no variable).
#
# The Dockerfile's build stage runs exactly this; agents_pipeline_tests/deploy/test_install.py runs
# it into a fresh venv, so the image's install steps are tested where no image can be built.
#
#   deploy/install.sh VENV [SOURCE]      SOURCE: the project folder (default: this script's parent)
set -eu

venv=${1:?usage: deploy/install.sh VENV [SOURCE]}
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip --disable-pip-version-check --no-input"

$pip install --no-cache-dir -r "$src/deploy/requirements.txt"
$pip install --no-cache-dir --no-deps "$src"
$pip check

# From a neutral folder, so the import comes from the environment, not from SOURCE.
cd /
"$venv/bin/python" -c 'import agents_pipeline.definitions as d; print(f"{d.__name__} loads from {d.__file__}")'
