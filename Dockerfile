# The code server image (docs/DEPLOY.md, "Container image"): `dagster api grpc` serving the
# agents_pipeline code location, and the run workers a container run launcher starts from it.
#
#   docker build -t registry.example.net/agents-pipeline:$(git rev-parse --short HEAD) .
#
# Two stages: the build stage installs the pinned stack with deploy/install.sh (the script a
# test runs in a fresh virtual environment, since no image can be built in CI); the runtime
# stage copies that environment beside the PostgreSQL client tools `db backup` and
# `db restore` need, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/requirements.txt deploy/install.sh deploy/
COPY sql sql
COPY agents_pipeline agents_pipeline
RUN deploy/install.sh /opt/agents-pipeline /src

FROM ${PYTHON_IMAGE}
# pg_dump/pg_restore of the server's own major version (agents_pipeline/defs/retention/backup.py
# refuses any other): from PostgreSQL's Debian repository, which carries every supported major.
ARG PG_MAJOR=16
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /home/agents --create-home agents \
    && mkdir -p /opt/dagster/dagster_home /var/lib/agents-pipeline/import \
    && chown agents:agents /opt/dagster/dagster_home /var/lib/agents-pipeline/import

COPY --from=build /opt/agents-pipeline /opt/agents-pipeline
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml

ENV PATH=/opt/agents-pipeline/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    AGENTS_PIPELINE_IMPORT_DIR=/var/lib/agents-pipeline/import \
    AGENTS_PIPELINE_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /home/agents
EXPOSE 4000
# Inside a container the server listens on the pod's or container's own interface; who may reach
# port 4000 is the network policy's (Kubernetes) or the Docker network's business (DEPLOY.md).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "api", "grpc", "-m", "agents_pipeline.definitions", "--location-name", "agents_pipeline", \
     "-h", "0.0.0.0", "-p", "4000", "--log-format", "json"]
