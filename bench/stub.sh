# Sourced by bench/run.sh and bench/load.sh: starts and stops bench/stub_instance.py, the
# stand-in Mastodon instance the benches connect their platforms to (tether verifies every token
# with its instance, and the benches have no internet and made-up tokens).
#
#   stub_start DIR   starts it on a free 127.0.0.1 port; sets STUB_PID, STUB_PORT, STUB_URL,
#                    STUB_ALLOW (the value for ROCKET_OUTBOUND_ALLOW_PRIVATE, so tether may call
#                    it over plain http) and exports TETHER_STUB_URL (for the Python clients).
#                    Its log is DIR/stub.log.
#   stub_stop        stops it (SIGTERM) and prints its request counts.
STUB_PID=
stub_start() {
  local dir=$1
  rm -f "$dir/stub.port"
  # Bounded even if this script is killed without running its traps: it exits when this shell
  # is gone, and after an hour in any case.
  python3 bench/stub_instance.py --port-file "$dir/stub.port" --lifetime 3600 --parent $$ \
    2>"$dir/stub.log" &
  STUB_PID=$!
  for _ in $(seq 1 100); do
    [ -s "$dir/stub.port" ] && break
    sleep 0.05
  done
  if [ ! -s "$dir/stub.port" ]; then
    echo "stub instance did not start; log:"; cat "$dir/stub.log"
    kill "$STUB_PID" 2>/dev/null || true
    STUB_PID=
    return 1
  fi
  STUB_PORT=$(cat "$dir/stub.port")
  STUB_URL="http://127.0.0.1:$STUB_PORT"
  STUB_ALLOW="[\"127.0.0.1:$STUB_PORT\"]"
  export TETHER_STUB_URL=$STUB_URL
  STUB_LOG=$dir/stub.log
}
stub_stop() {
  if [ -n "$STUB_PID" ]; then
    kill "$STUB_PID" 2>/dev/null || true
    wait "$STUB_PID" 2>/dev/null || true
    STUB_PID=
    cat "$STUB_LOG" 2>/dev/null || true
  fi
}
