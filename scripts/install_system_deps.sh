#!/usr/bin/env bash
# System packages the tests and `make run` need beyond the Python venv:
#   - PostgreSQL server binaries (initdb, pg_ctl): the project-local cluster and the test clusters
#   - Chromium: the browser test drives Debian's /usr/bin/chromium (Playwright downloads nothing)
#   - nginx: the authenticating proxy of deploy/nginx/ runs in front of `dagster dev` in a test
#     (the test starts its own nginx on a free port; on a host with systemd, installing the
#     package also starts Debian's default site on port 80: `systemctl disable --now nginx`)
# As root with apt-get, installs what is missing; otherwise prints what to install and exits 1.
# Arguments name further packages, each checked by a command of its name (`make bench-migration`
# passes pgloader).
set -euo pipefail

missing=()
for extra in "$@"; do
    if ! command -v "$extra" >/dev/null; then
        missing+=("$extra")
    fi
done
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && ! command -v pg_ctl >/dev/null; then
    missing+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    missing+=(nginx)
fi
if ! command -v openssl >/dev/null; then
    missing+=(openssl)   # the TLS tests make their own certificates
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
    exit 0
fi

echo "missing system packages: ${missing[*]}" >&2
echo "install them (Debian: sudo apt-get install -y ${missing[*]}), or set AGENTS_PIPELINE_PG_BIN" \
     "for PostgreSQL; the browser test needs /usr/bin/chromium, the proxy test nginx" >&2
exit 1
