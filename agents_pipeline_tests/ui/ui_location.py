"""The code location the ui tests serve with `dagster dev`: exactly the product's root definitions."""

from agents_pipeline.definitions import defs

__all__ = ["defs"]
