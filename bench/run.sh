#!/usr/bin/env bash
# Runs bench/login_bench.py against a release build of tether, on SQLite and (when reachable)
# PostgreSQL. Everything stays on 127.0.0.1: platforms connect to a stub instance
# (bench/stub_instance.py) on a free loopback port. Usage: bench/run.sh [sqlite|postgres|all]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stub.sh
trap stub_stop EXIT
which="${1:-all}"
cargo build --release --quiet
bin=target/release/tether
port=${TETHER_BENCH_PORT:-8765}
export TETHER_BENCH_PORT=$port

run_one() {
  local engine=$1 url=$2
  local dir
  dir=$(mktemp -d)
  stub_start "$dir"
  ROCKET_PROFILE=release \
  ROCKET_SECRET_KEY=$(head -c 32 /dev/urandom | base64) \
  ROCKET_TOKEN_KEY=$(head -c 32 /dev/urandom | base64) \
  ROCKET_SECURE_COOKIES=false \
  ROCKET_LOG_LEVEL=off \
  ROCKET_PORT=$port \
  ROCKET_ADDRESS=127.0.0.1 \
  ROCKET_OUTBOUND_ALLOW_PRIVATE="$STUB_ALLOW" \
  ROCKET_DATA_DIR="$dir" \
  ROCKET_DATABASES="{tether={url=\"${url//@DIR@/$dir}\"}}" \
    "$bin" serve &
  local pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  TETHER_BENCH_PID=$pid TETHER_BENCH_ENGINE=$engine python3 bench/login_bench.py || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  stub_stop
  rm -rf "$dir"
}

echo "machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%d)"
if [ "$which" = sqlite ] || [ "$which" = all ]; then
  run_one sqlite "sqlite://@DIR@/bench.db?mode=rwc"
fi
if [ "$which" = postgres ] || [ "$which" = all ]; then
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    schema="tether_bench_$$"
    psql -h 127.0.0.1 -U postgres -d test -qc "CREATE SCHEMA $schema"
    run_one postgres "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
    PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA $schema CASCADE"
  else
    echo "PostgreSQL not reachable at 127.0.0.1:5432; skipped"
  fi
fi
