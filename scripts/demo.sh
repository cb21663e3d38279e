#!/usr/bin/env bash
# `make demo`, beside `make run`: seed weeks of backdated history, start the demo fleet (one OS
# process per agent), queue the latest partition of every partitioned asset through the
# webserver, and keep the fleet running until Ctrl-C. Safe to re-run: the seed adds only the
# time since the previous seed, and agents keep their registry rows.
set -euo pipefail
cd "$(dirname "$0")/.."
AP=${AGENTS_PIPELINE_BIN:-.venv/bin/agents-pipeline}
AGENTS=${DEMO_AGENTS:-6}

"$AP" db up >/dev/null
"$AP" db migrate
"$AP" demo-seed --agents "$AGENTS"

# Up to PROCESSES agents run as their own processes (the sampler finds them); the rest of a
# bigger fleet (DEMO_AGENTS=1000) runs in one swarm process.
PROCESSES=${DEMO_PROCESS_AGENTS:-6}
"$AP" demo-fleet --agents "$(( AGENTS < PROCESSES ? AGENTS : PROCESSES ))" &
fleet=$!
swarm=
if (( AGENTS > PROCESSES )); then
    "$AP" demo-swarm --agents "$AGENTS" --skip "$PROCESSES" &
    swarm=$!
fi
trap 'kill -TERM "$fleet" $swarm 2>/dev/null || true' INT TERM

# Needs `make run` (the webserver); the fleet keeps running either way.
if ! "$AP" demo-kickoff --wait "${DEMO_KICKOFF_WAIT:-180}"; then
    echo "demo: could not queue the first runs (is \`make run\` up?); the fleet runs anyway" >&2
else
    # Forty days of rollups and LLM usage, each partition reported to the UI: the plots show history.
    "$AP" demo-history --days "${DEMO_HISTORY_DAYS:-40}" || echo "demo: could not fill the plots' history" >&2
    # A small legacy SQLite file through the migration job, so its group has a report too.
    # The job reads only inside the import folder `make run` gave the webserver.
    py="$(dirname "$AP")/python"
    import_dir="${AGENTS_PIPELINE_IMPORT_DIR:-$PWD/import}"
    mkdir -p .local/demo && mkdir -p -m 700 "$import_dir"
    "$py" -m agents_pipeline.demo.legacy "$import_dir/background_agents.db" > .local/demo/migration.yaml
    "$AP" launch sqlite_migration_job --config .local/demo/migration.yaml --no-wait \
        || echo "demo: could not launch sqlite_migration_job" >&2
fi
wait "$fleet" $swarm
