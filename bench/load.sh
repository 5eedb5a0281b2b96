#!/usr/bin/env bash
# Mixed-flow load test (bench/load.py) against a release build of tether, on SQLite and on
# PostgreSQL, each on a fresh database; then invariant checks on the database and a scan of the
# server's log. Everything stays on 127.0.0.1: platforms connect to a stub instance
# (bench/stub_instance.py, one per engine, on a free loopback port) that tether verifies tokens
# with. Exits non-zero if any check fails on any engine.
#
# Usage: bench/load.sh [sqlite|postgres|all]
#   TETHER_LOAD_SECONDS=60        length of the timed window
#   TETHER_LOAD_CONNECTIONS=64    client threads, one keep-alive connection and session each
#   TETHER_LOAD_DELETES=1         0 leaves out the delete-and-recreate flow
#   TETHER_LOAD_POOL=nproc×4      databases.tether.max_connections
#   TETHER_LOAD_PORT=8766         TETHER_LOAD_PG=postgres://postgres@127.0.0.1:5432/test
# Output (load.out) and server logs are kept in the directory printed at the start and end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stub.sh
which="${1:-all}"
cargo build --release --quiet
bin=$PWD/target/release/tether
port=${TETHER_LOAD_PORT:-8766}
pg=${TETHER_LOAD_PG:-postgres://postgres@127.0.0.1:5432/test}
# Rocket's default workers (one per core) × 4, the documented pool default, stated explicitly.
pool=${TETHER_LOAD_POOL:-$(( $(nproc) * 4 ))}
out=$(mktemp -d /tmp/tether-load.XXXXXX)
export TETHER_LOAD_PORT=$port
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGDATABASE=test
exec > >(tee "$out/load.out") 2>&1
status=0
pid=
schema=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  stub_stop >/dev/null
  if [ -n "$schema" ]; then
    PGOPTIONS="-c client_min_messages=warning" psql -X -qc "DROP SCHEMA IF EXISTS $schema CASCADE" || true
  fi
}
trap cleanup EXIT

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$rev" != unknown ] && ! git diff --quiet HEAD -- src Cargo.toml migrations templates; then
  rev="$rev + uncommitted changes in src/"
fi
echo "machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ); commit $rev"
echo "window ${TETHER_LOAD_SECONDS:-60} s, ${TETHER_LOAD_CONNECTIONS:-64} connections, pool $pool; output in $out"

run_one() {
  local engine=$1 url=$2
  local log=$out/$engine.log
  mkdir -p "$out/$engine-stub"
  if ! stub_start "$out/$engine-stub"; then status=1; return; fi
  # The release profile needs both keys; cookies are not Secure because this is plain HTTP.
  export ROCKET_PROFILE=release \
    ROCKET_SECRET_KEY=$(head -c 32 /dev/urandom | base64) \
    ROCKET_TOKEN_KEY=$(head -c 32 /dev/urandom | base64) \
    ROCKET_SECURE_COOKIES=false \
    ROCKET_LOG_LEVEL=normal \
    ROCKET_CLI_COLORS=false \
    ROCKET_PORT=$port \
    ROCKET_ADDRESS=127.0.0.1 \
    ROCKET_OUTBOUND_ALLOW_PRIVATE="$STUB_ALLOW" \
    ROCKET_DATA_DIR="$out/$engine-data" \
    ROCKET_DATABASES="{tether={url=\"$url\",max_connections=$pool,connect_timeout=5}}"
  # As a multi-instance roll-out would: migrate once, then serve without migrating.
  "$bin" migrate
  local pw=$out/admin-password
  printf 'admin password for the load test\n' >"$pw"
  "$bin" user add loadadmin loadadmin@load.example --admin <"$pw" >/dev/null
  ROCKET_RUN_MIGRATIONS=false "$bin" serve >"$log" 2>&1 &
  pid=$!
  local up=
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "$engine: server did not answer /healthz; log:"; tail -20 "$log"
    kill "$pid" 2>/dev/null || true
    pid=
    stub_stop
    status=1
    return
  fi
  local rc=0
  TETHER_LOAD_PID=$pid TETHER_LOAD_ENGINE=$engine python3 bench/load.py run || rc=$?
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  echo
  stub_stop
  python3 bench/load.py logcheck "$log" || rc=1
  if [ "$rc" -ne 0 ]; then
    echo "$engine: FAILED (log: $log)"
    status=1
  fi
}

if [ "$which" = sqlite ] || [ "$which" = all ]; then
  TETHER_LOAD_SQLITE=$out/load.db run_one sqlite "sqlite://$out/load.db?mode=rwc"
fi
if [ "$which" = postgres ] || [ "$which" = all ]; then
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    schema="tether_load_$$"
    psql -X -qc "CREATE SCHEMA $schema"
    TETHER_LOAD_SCHEMA=$schema run_one postgres "$pg?options=-c%20search_path%3D$schema"
    PGOPTIONS="-c client_min_messages=warning" psql -X -qc "DROP SCHEMA $schema CASCADE"
    schema=
  else
    echo "PostgreSQL not reachable at 127.0.0.1:5432; skipped"
    status=1
  fi
fi
echo "output and server logs: $out"
exit $status
