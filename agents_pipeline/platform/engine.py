"""The one way a SQLAlchemy engine over the shared-state database is built, for the Dagster
resource and the CLI alike.

The rules used to be written three times and had drifted: TLS settings from the environment
(AGENTS_PIPELINE_SSLMODE, ...) must only fill in what the URL leaves out, as on the agent side
(``core.dsn.connect_kwargs``); a URL that says ``sslmode=verify-full`` must not be weakened by a
variable. A malformed URL fails before any connection, with the password masked.
"""

from __future__ import annotations

import sqlalchemy as sa

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.settings import ssl_params


def create_engine(url: str, *, application_name: str, pool_size: int = 1, max_overflow: int | None = None,
                  pool_recycle_s: int = 1800) -> sa.Engine:
    """A pooled engine; ``pool_pre_ping`` so a restarted server costs a retry, not an error."""
    connect_kwargs(url)  # validates the URL; its message masks the password
    in_url = sa.engine.make_url(url).query
    tls = {key: value for key, value in ssl_params().items() if key not in in_url}
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow, pool_recycle=pool_recycle_s,
        connect_args={"application_name": application_name, **tls},
    )
