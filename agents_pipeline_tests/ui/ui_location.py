"""The code location the ui tests serve with `dagster dev`: the product's root definitions, plus
the ui domain's (with code references) until the root merges them; then exactly the root's."""

import dagster as dg

from agents_pipeline import definitions as root
from agents_pipeline.ui import definitions as ui_definitions
from agents_pipeline.ui.code_references import with_code_references


def _with_ui() -> dg.Definitions:
    names = {job.name for job in root.defs.jobs or []}
    if "schema_migrate_job" in names:
        return root.defs
    return with_code_references(dg.Definitions.merge(root.defs, ui_definitions.defs))


defs = _with_ui()
