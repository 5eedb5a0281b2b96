#!/usr/bin/env bash
# The dashboard benchmark: builds release tether and the Rocket hello world (bench/hello.rs),
# starts the stub instance, and runs bench/dashboard.py (see its docstring for the cases and
# settings). Needs wrk (Debian: apt-get install wrk) and, for the PostgreSQL half, PostgreSQL at
# 127.0.0.1:5432. Usage: bench/dashboard.sh [sqlite|postgres|all|cpu|callgrind]
#   cpu        bench/cpu_per_request.py: quick A/B figures for one change (perf)
#   callgrind  bench/callgrind.py: instructions per dashboard request (valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/stub.sh
trap stub_stop EXIT
mode=${1:-all}
case "$mode" in
  cpu|callgrind) ;;
  sqlite) export TETHER_BENCH_ENGINES=sqlite ;;
  postgres) export TETHER_BENCH_ENGINES=postgres ;;
  all) export TETHER_BENCH_ENGINES=${TETHER_BENCH_ENGINES:-sqlite,postgres} ;;
  *) echo "usage: $0 [sqlite|postgres|all|cpu|callgrind]" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin tether --example bench_hello
dir=$(mktemp -d)
stub_start "$dir"
export STUB_ALLOW
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml migrations templates 2>/dev/null || rev="$rev + uncommitted changes"
echo "commit $rev; load average $(cut -d' ' -f1-3 /proc/loadavg)"
case "$mode" in
  cpu) python3 bench/cpu_per_request.py ;;
  callgrind) python3 bench/callgrind.py ;;
  *) python3 bench/dashboard.py ;;
esac
