"""The code location: every domain under ``agents_pipeline/defs/`` autoloaded (Dagster's ``dg``
project layout), with "View code" links on every asset.

Each domain folder holds its plain logic beside its Dagster face; the loader imports every
module there and collects the assets, checks, jobs, schedules and sensors it finds, and each
domain's ``resources.py`` binds that domain's resources. Code references are added once, here,
for the whole location: applying them twice would list a file twice.
"""

import warnings
from pathlib import Path

import dagster as dg

from agents_pipeline.platform.code_references import with_code_references


def component_tree() -> dg.ComponentTree:
    """The defs folder's tree. In a clone, from pyproject.toml's ``[tool.dg]`` (what `dg` reads);
    an installed package (the code server image, pip install) has no pyproject.toml above it, and
    Dagster's project lookup fails there, so the defs module is named directly: same definitions."""
    package = Path(__file__).parent
    if (package.parent / "pyproject.toml").is_file():
        return dg.ComponentTree.for_project(package)
    from agents_pipeline import defs as defs_module

    return dg.ComponentTree.from_module(defs_module=defs_module, project_root=package.parent)


def load() -> dg.Definitions:
    """The whole location as one Definitions (tests and tools call this directly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # the loader's own use of a preview API
        return with_code_references(component_tree().build_defs())


defs = load()


def load_domain(name: str) -> dg.Definitions:
    """One domain folder's definitions (``defs/<name>/``), as the location loads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return component_tree().build_defs(name)
