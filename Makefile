# Two commands from a fresh clone: `make run` serves the product, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow soak lint venv db-up db-down clean demo readiness system-deps cli-docs \
        bench-ingest bench-health bench-queue bench-migration bench-archival bench-langsmith bench-overhead

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Starts a project-local PostgreSQL unless AGENTS_PIPELINE_DATABASE_URL is set, applies the
# schema, and runs `dagster dev` on http://127.0.0.1:3000 until Ctrl-C. sqlite_migration_job
# reads legacy files only from AGENTS_PIPELINE_IMPORT_DIR: <project>/import unless it is set.
# While that PostgreSQL runs, `dg dev` in this folder finds it too, with nothing exported.
run: $(STAMP)
	$(BIN)/agents-pipeline db up
	$(BIN)/agents-pipeline db migrate
	export AGENTS_PIPELINE_IMPORT_DIR="$${AGENTS_PIPELINE_IMPORT_DIR:-$(CURDIR)/import}" \
	    && mkdir -p -m 700 "$$AGENTS_PIPELINE_IMPORT_DIR" && exec $(BIN)/agents-pipeline dev

# PostgreSQL and Chromium (for the browser test) come from Debian: installed when missing and
# running as root, otherwise the script says what to install.
system-deps:
	@scripts/install_system_deps.sh

# `dg check defs` loads the definitions as `dg dev` would; it needs no database and no variable.
# Two pytest workers by default (the 2-core machines CI runs on); each starts its own PostgreSQL.
# Tests marked `serial` time a command against the wall clock: they run alone afterwards.
TEST_WORKERS ?= 2

test: $(STAMP) system-deps
	$(BIN)/ruff check agents_pipeline agents_pipeline_tests benchmarks
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow and not serial"
	$(BIN)/python -m pytest -q -m "serial and not slow"

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m slow

# The live test (issue #19): the whole stack for 60 minutes with 200 agents under injected faults,
# on a throwaway PostgreSQL; the report (markdown and PNG plots) goes to SOAK_OUT. With `make run`
# up, the result is also recorded as a materialization of soak_report in its UI.
SOAK_MINUTES ?= 60
SOAK_AGENTS ?= 200
SOAK_OUT ?= docs/soak/$(shell date -u +%Y-%m-%d)

soak: $(STAMP) system-deps
	$(BIN)/python -m pip install --quiet -e '.[soak]'
	$(BIN)/agents-pipeline soak --minutes $(SOAK_MINUTES) --agents $(SOAK_AGENTS) --out $(SOAK_OUT)

# The big benchmarks, one target per domain; figures and their history in docs/BENCHMARKS.md. Each
# prints its figures and measures its baseline in the same run, on throwaway PostgreSQL clusters.
# Run them one at a time on a quiet machine: the ratios hold on a shared one, absolute figures do not.
bench-ingest: $(STAMP) system-deps
	$(BIN)/python benchmarks/heartbeat_ingest.py --seconds 8 --repeats 3
	$(BIN)/python benchmarks/http_ingest.py --seconds 8 --repeats 3

bench-health: $(STAMP) system-deps
	$(BIN)/python benchmarks/health_eval.py --agents 10000 --per-agent 1000 --repeats 20 --mass-repeats 3
	$(BIN)/python benchmarks/health_eval.py --agents 100000 --per-agent 1000 --repeats 10 --mass-repeats 3

# PgQueuer and Procrastinate (and asyncpg, psycopg 3) come from the benchmarks extra, never the product's deps.
bench-queue: $(STAMP) system-deps
	$(BIN)/python -m pip install --quiet -e '.[benchmarks]'
	$(BIN)/python benchmarks/task_queue.py --tasks 4000 --workers 1 20 --rounds 3

# Issue #22's two ratios from one run: the documented clean file against pgloader (Debian's
# package, installed when missing and root) and the plain-COPY baseline, then the second dialect.
bench-migration: $(STAMP) system-deps
	@scripts/install_system_deps.sh pgloader
	$(BIN)/python benchmarks/sqlite_migration.py --only clean --pgloader-prefetch 1000
	$(BIN)/python benchmarks/dialect_migration.py --rounds 3

bench-archival: $(STAMP) system-deps
	$(BIN)/python benchmarks/archival.py

bench-langsmith: $(STAMP) system-deps
	$(BIN)/python benchmarks/langsmith_sync.py --runs 100000

# The idle cost of the whole `make run` stack over the bare `dagster dev` floor (about 30 minutes).
bench-overhead: $(STAMP) system-deps
	$(BIN)/python benchmarks/sampler_overhead.py --repeats 10 --stack-minutes 10 --stock-floor-minutes 6

# Beside `make run`, in a second terminal: backdated history, then a simulated fleet.
demo: $(STAMP)
	AGENTS_PIPELINE_BIN=$(BIN)/agents-pipeline scripts/demo.sh

readiness: $(STAMP)
	$(BIN)/agents-pipeline readiness

# docs/cli.md, the command reference, is generated from the parser (a test checks it matches).
cli-docs: $(STAMP)
	$(BIN)/python -m agents_pipeline.cli.reference

lint: $(STAMP)
	$(BIN)/ruff check agents_pipeline agents_pipeline_tests benchmarks

db-up: $(STAMP)
	$(BIN)/agents-pipeline db up

db-down: $(STAMP)
	$(BIN)/agents-pipeline db down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
