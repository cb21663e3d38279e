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


def load() -> dg.Definitions:
    """The whole location as one Definitions (tests and tools call this directly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # the loader's own use of a preview API
        return with_code_references(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))


defs = load()


def load_domain(name: str) -> dg.Definitions:
    """One domain folder's definitions (``defs/<name>/``), as the location loads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.ComponentTree.for_project(Path(__file__).parent).build_defs(name)
