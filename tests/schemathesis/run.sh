#!/usr/bin/env bash
# Schemathesis against a live `pdx serve`, once per role (issue #25, "API fuzzing").
#
# Starts the debug binary on a fresh data directory and a free loopback port, issues one
# API key per role with `pdx keys create` (before the server starts, so no first-run
# admin key is involved), then runs `schemathesis run <server>/openapi.json` with every
# default check as each role in turn (`Authorization: Bearer <key>`), and once as the
# public (no key) if `public` is among the roles. Exits non-zero if any run failed.
#
# The server runs with the rate limits and the address lock-out off: schemathesis sends
# bad keys on purpose (the `ignored_auth` check), and twenty of them would lock the
# loopback address out for fifteen minutes, after which every answer is a 429. That is
# the configuration the README gives for a server behind a reverse proxy.
#
# `tests/schemathesis/schemathesis.toml` names the few operations whose input has a rule
# OpenAPI cannot state (cryptographic formats, parameters bound by each other), and the
# documented status their refusal takes; every check runs on every operation.
#
# Knobs (environment):
#   PDX_ST_ROLES          roles to run as (default "admin developer supervisor"; any of
#                         provider developer reviewer exchange buyer subject authority
#                         finance supervisor admin, and `public` for no key)
#   PDX_ST_MAX_EXAMPLES   test cases per operation and phase (default 10: with the
#                         default roles, about 5 minutes on 2 cores)
#   PDX_ST_WORKERS        schemathesis workers (default 2; CI uses 1: with two,
#                         schemathesis 4.32 sometimes stops on an internal error)
#   PDX_ST_PHASES         phases (default examples,coverage,fuzzing,stateful)
#   PDX_ST_SEED           a fixed seed, to reproduce a run
#   PDX_ST_DEMO=1         seed the data directory with `pdx demo` first, so that ids in
#                         paths can name real resources; its keys are used where the
#                         demo made one for the role
#   PDX_ST_REPORT_DIR     where the JUnit reports go (default: a temporary directory)
#   PDX_BIN               the pdx binary (default: the debug build in CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."

target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/pdx-target}"
pdx="${PDX_BIN:-$target_dir/debug/pdx}"
roles="${PDX_ST_ROLES:-admin developer supervisor}"
max_examples="${PDX_ST_MAX_EXAMPLES:-10}"
workers="${PDX_ST_WORKERS:-2}"
phases="${PDX_ST_PHASES:-examples,coverage,fuzzing,stateful}"

if [ ! -x "$pdx" ]; then
    echo "no pdx binary at $pdx: build it first (cargo build)" >&2
    exit 2
fi
# The pinned version (a no-op when it is installed already).
python3 -m pip install -q -r tests/schemathesis/requirements.txt
# pip may have put the script where PATH does not look; the module always runs.
schemathesis=(schemathesis)
command -v schemathesis >/dev/null || schemathesis=(python3 -m schemathesis.cli)
echo "schemathesis $("${schemathesis[@]}" --version 2>/dev/null | tail -n 1)"

work="$(mktemp -d)"
data_dir="$work/data"
mkdir -p "$data_dir"
report_dir="${PDX_ST_REPORT_DIR:-$work/reports}"
mkdir -p "$report_dir"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

config="$work/pdx.toml"
cat >"$config" <<'EOF'
rate_limit_per_sec = 0
auth_failure_limit = 0
anonymous_writes_per_hour = 0
EOF
pdx_cmd=("$pdx" --config "$config" --data-dir "$data_dir")

if [ "${PDX_ST_DEMO:-0}" = "1" ]; then
    echo "seeding the data directory with pdx demo"
    "${pdx_cmd[@]}" demo >"$work/demo.log" 2>&1 || {
        cat "$work/demo.log" >&2
        exit 2
    }
fi

# One key per role: the demo's, when it made one for the role; else a new one.
declare -A keys
for role in $roles; do
    [ "$role" = "public" ] && continue
    key=""
    if [ -f "$data_dir/portal-keys.txt" ]; then
        key="$(awk -v r="$role" '$1 == r { print $NF; exit }' "$data_dir/portal-keys.txt")"
    fi
    if [ -z "$key" ] && [ "$role" = "admin" ] && [ -f "$data_dir/admin.key" ]; then
        key="$(tr -d '[:space:]' <"$data_dir/admin.key")"
    fi
    if [ -z "$key" ]; then
        key="$("${pdx_cmd[@]}" keys create --org "schemathesis-$role" --role "$role" \
            --label schemathesis)"
    fi
    keys[$role]="$key"
done

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
PDX_LOG=warn "${pdx_cmd[@]}" serve --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$base/readyz', timeout=1)" \
        2>/dev/null; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server exited:" >&2
        cat "$work/server.log" >&2
        exit 2
    fi
    sleep 0.2
done
echo "pdx serving at $base"

failed=()
for role in $roles; do
    args=(--config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json"
        --max-examples "$max_examples"
        --workers "$workers"
        --phases "$phases"
        --report junit --report-dir "$report_dir/$role"
        --no-color)
    if [ -n "${PDX_ST_SEED:-}" ]; then
        args+=(--seed "$PDX_ST_SEED")
    fi
    if [ "$role" != "public" ]; then
        args+=(-H "Authorization: Bearer ${keys[$role]}")
    fi
    echo
    echo "=== schemathesis as $role"
    if ! "${schemathesis[@]}" "${args[@]}"; then
        failed+=("$role")
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server died during the $role run:" >&2
        tail -n 50 "$work/server.log" >&2
        exit 1
    fi
done

if [ -n "${PDX_ST_REPORT_DIR:-}" ]; then
    echo "JUnit reports in $report_dir"
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "schemathesis failed as: ${failed[*]}" >&2
    exit 1
fi
echo "schemathesis passed as: $roles"
