"""The performance domain: plain functions over the database, and its Dagster face in definitions.py."""
