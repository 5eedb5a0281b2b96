#!/usr/bin/env python3
"""A stand-in Mastodon instance for the benchmarks (bench/run.sh, bench/load.sh).

tether verifies every access token with its instance before storing a platform, and the bench
machine has no internet, so the benches connect their platforms to this server instead:

  GET  /api/v1/accounts/verify_credentials   Bearer tok-<username>-<anything> -> the account
                                             anything else -> 401 {"error": "The access token is invalid"}
  GET  /api/v1/instance, /api/v2/instance    {"version": "4.3.0", ...}
  POST /oauth/revoke                         {}
  anything else                              404 {"error": "Record not found"}

Usage: python3 bench/stub_instance.py --port-file FILE [--lifetime SECONDS] [--parent PID]

It listens on 127.0.0.1 only, on a free port it writes to FILE once it is listening, and stops on
SIGTERM/SIGINT, after --lifetime seconds (default 1800), or when --parent is gone, whichever
comes first. On stopping it prints one line per (method, path, status) with its count, so a
bench can show how many verifications tether made. Standard library only.
"""
import argparse
import collections
import json
import os
import re
import signal
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = re.compile(r"^tok-([A-Za-z0-9_]+)-")
COUNTS = collections.Counter()
COUNTS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real instance; tether's client pools
    server_version = "tether-bench-stub/1"
    # Idle keep-alive connections are closed after this long: longer than reqwest's pool idle
    # timeout (90 s), so the client always gives up a connection first.
    timeout = 300
    # Headers and body leave in one write (buffered, flushed after each request) with Nagle off:
    # written separately, the body waits for the client's delayed ACK, ~40 ms per answer.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 — quiet: counts are printed at the end
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        path = self.path.split("?", 1)[0]
        with COUNTS_LOCK:
            COUNTS[(self.command, path, status)] += 1

    def origin(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/api/v1/accounts/verify_credentials":
            auth = self.headers.get("Authorization", "")
            match = TOKEN.match(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None
            if not match:
                return self.reply(401, {"error": "The access token is invalid"})
            name = match.group(1)
            return self.reply(
                200,
                {
                    "id": str(zlib.crc32(name.encode()) + 100000),
                    "username": name,
                    "acct": name,
                    "display_name": f"Bench {name}",
                    "avatar": f"{self.origin()}/avatars/original/missing.png",
                    "url": f"{self.origin()}/@{name}",
                    "followers_count": 12,
                    "following_count": 34,
                    "statuses_count": 56,
                },
            )
        if path in ("/api/v1/instance", "/api/v2/instance"):
            return self.reply(
                200,
                {
                    "uri": f"127.0.0.1:{self.server.server_address[1]}",
                    "domain": f"127.0.0.1:{self.server.server_address[1]}",
                    "title": "tether bench stub",
                    "version": "4.3.0",
                },
            )
        return self.reply(404, {"error": "Record not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.split("?", 1)[0] == "/oauth/revoke":
            return self.reply(200, {})
        return self.reply(404, {"error": "Record not found"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=1800)
    ap.add_argument("--parent", type=int)
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(tmp, args.port_file)  # the reader never sees a half-written file

    stop = threading.Event()
    reason = ["lifetime reached"]

    def on_signal(signum, _frame):
        reason[0] = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    serving.daemon = True
    serving.start()
    deadline = time.monotonic() + args.lifetime
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(1.0)
        if args.parent and not os.path.exists(f"/proc/{args.parent}"):
            reason[0] = f"parent {args.parent} gone"
            break
    server.shutdown()
    server.server_close()
    with COUNTS_LOCK:
        rows = sorted(COUNTS.items())
    total = sum(n for _, n in rows)
    print(f"stub instance stopped ({reason[0]}): {total} requests", file=sys.stderr)
    for (method, path, status), n in rows:
        print(f"  {n:7d} {method} {path} -> {status}", file=sys.stderr)


if __name__ == "__main__":
    main()
