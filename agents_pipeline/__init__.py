"""agents_pipeline: operations platform for a fleet of background AI agents.

The package root stays import-light: agents import ``agents_pipeline.core`` (psycopg2 only),
and only the Dagster side (``definitions``) pulls in Dagster, SQLAlchemy and pandas.
"""

__version__ = "0.1.0"
