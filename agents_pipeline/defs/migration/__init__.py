"""The migration domain: plain functions over the database, and its Dagster face in definitions.py."""
