"""The platform itself as Dagster sees it: the shared-state schema and its version check."""
