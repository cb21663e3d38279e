"""The security domain's Dagster face: the privilege audit as a check on the schema asset."""

import dagster as dg

from agents_pipeline.security.checks import database_roles_least_privilege

defs = dg.Definitions(asset_checks=[database_roles_least_privilege])
