"""Links every asset in the UI to the file and line that defines it ("View code" on the
asset's page), for the whole code location at once, so no domain can forget it."""

import warnings

import dagster as dg


def with_code_references(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with ``dagster/code_references`` metadata on every asset definition.

    Apply once, at the root, to the merged definitions: applying it twice lists a file twice.
    The defs-folder loader finds an asset once in every module that imports it; the copies are
    one object, which Dagster folds into one, but each copy made here would be a new object and
    a duplicate key, so they are folded first.
    """
    unique = list({id(a): a for a in defs.assets or []}.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the API is beta in 1.13; its output is stable metadata
        assets = dg.with_source_code_references(unique)
    return dg.Definitions(
        assets=assets, schedules=defs.schedules, sensors=defs.sensors, jobs=defs.jobs, resources=defs.resources,
        executor=defs.executor, loggers=defs.loggers, asset_checks=defs.asset_checks, metadata=defs.metadata,
        component_tree=defs.component_tree,
    )
