"""The code location the ui tests serve with `dagster dev`: the product's root definitions, plus
the ui domain's until the root merges them (then exactly the root's)."""

import dagster as dg

from agents_pipeline import definitions as root
from agents_pipeline.ui import definitions as ui_definitions


def _with_ui() -> dg.Definitions:
    names = {job.name for job in root.defs.jobs or []}
    if "schema_migrate_job" in names:
        return root.defs
    return dg.Definitions.merge(root.defs, ui_definitions.defs)


defs = _with_ui()
