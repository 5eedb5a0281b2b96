#!/usr/bin/env python3
"""The dashboard benchmark (run through bench/dashboard.sh, which builds the binaries).

For each engine it prepares databases through tether's own CLI (`tether migrate`) and web forms
(register, three platforms connected with tokens the stub instance accepts), signs in, and then
runs wrk (64 connections, 2 threads, on the same 2 cores as the servers) case after case,
alternating the order in every round:

  hello 13 B      a Rocket hello world (bench/hello.rs, tether's Rocket and profile)
  hello 6 KB      the same binary serving a 6 KB page from memory
  app.js          tether's GET /static/app.js
  healthz         tether's GET /healthz (one database round trip)
  dashboard       tether's GET /dashboard, a signed-in user with 3 platforms (the active one
                  with a finished audit of 100 images), 10 users in all
  dashboard, large  the same on a database seeded by bench/seed.py (100k users, 300k platforms,
                  1M sessions, audits of 3000 accounts)
  dashboard + 8 logins  the small database's dashboard while 8 clients sign in over and over

It prints one table of medians over the rounds (req/s, p50, p99, ratios to the baselines,
non-200 answers), tether's peak RSS during the dashboard runs (sampled every 10 ms) and over
its life (VmHWM, password hashing at sign-up included), plus how long `tether migrate` on an empty
database and the first answer took.

Environment: TETHER_BENCH_ROUNDS (3), TETHER_BENCH_SECONDS (8), TETHER_BENCH_CONNECTIONS (64),
TETHER_BENCH_ENGINES (sqlite,postgres), TETHER_BENCH_LARGE (1; 0 skips the large database),
TETHER_BENCH_POOL (the pool's max_connections; unset: tether's default),
TETHER_STUB_URL and STUB_ALLOW (set by bench/stub.sh), TETHER_BIN and TETHER_HELLO_BIN (other builds
to compare, such as one with LTO).
"""
import base64
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TETHER = os.environ.get("TETHER_BIN", os.path.join(ROOT, "target/release/tether"))
HELLO = os.environ.get("TETHER_HELLO_BIN", os.path.join(ROOT, "target/release/examples/bench_hello"))
PASSWORD = "bench password, long enough"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
ROUNDS = int(os.environ.get("TETHER_BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("TETHER_BENCH_SECONDS", "8"))
POOL = os.environ.get("TETHER_BENCH_POOL")
CONNECTIONS = int(os.environ.get("TETHER_BENCH_CONNECTIONS", "64"))
ENGINES = os.environ.get("TETHER_BENCH_ENGINES", "sqlite,postgres").split(",")
LARGE = os.environ.get("TETHER_BENCH_LARGE", "1") != "0"
PG = "postgres://postgres@127.0.0.1:5432/test"
WRK_LUA = os.path.join(ROOT, "bench/status.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key():
    return base64.b64encode(os.urandom(32)).decode()


class Client:
    """A keep-alive connection with a cookie jar and the page's CSRF token."""

    def __init__(self, port, ip="10.1.0.1"):
        self.port = port
        self.ip = ip
        self.cookies = {}
        self.csrf = ""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, path, fields=None):
        headers = {"X-Real-IP": self.ip}
        body = None
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = self.cookie_header()
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, val = value.split(";", 1)[0].partition("=")
            if val == "" or "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        match = CSRF_META.search(text)
        if match:
            self.csrf = match.group(1)
        return resp.status, text

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


class Server:
    """`tether serve` on a free port with its own database and keys."""

    def __init__(self, engine, url, label):
        self.engine = engine
        self.url = url
        self.label = label
        self.port = free_port()
        self.env = dict(
            os.environ,
            ROCKET_PROFILE="release",
            ROCKET_SECRET_KEY=key(),
            ROCKET_TOKEN_KEY=key(),
            ROCKET_SECURE_COOKIES="false",
            ROCKET_LOG_LEVEL="off",
            ROCKET_PORT=str(self.port),
            ROCKET_ADDRESS="127.0.0.1",
            ROCKET_OUTBOUND_ALLOW_PRIVATE=os.environ.get("STUB_ALLOW", "[]"),
            ROCKET_DATA_DIR=tempfile.mkdtemp(prefix="tether-bench-data-"),
            ROCKET_DATABASES=('{tether={url="%s"%s}}'
                              % (url, f", max_connections={POOL}" if POOL else "")),
        )
        self.proc = None

    def migrate(self):
        subprocess.run([TETHER, "migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self.proc = subprocess.Popen([TETHER, "serve"], env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.005)
        sys.exit(f"{self.label}: tether did not answer /healthz")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """The largest resident set of `pid` while it runs, read every 10 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.01)


def sign_up(server, username):
    """Registers `username` and connects three platforms; returns the signed-in client."""
    c = Client(server.port)
    c.request("GET", "/register")
    status, _ = c.request(
        "POST",
        "/register",
        {
            "username": username,
            "email": f"{username}@bench.example",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "csrf_token": c.csrf,
        },
    )
    if status != 303:
        sys.exit(f"{server.label}: registering {username} answered {status}")
    stub = os.environ["TETHER_STUB_URL"]
    for k in range(3):
        c.request("GET", "/platforms/new")
        status, text = c.request(
            "POST",
            "/platforms",
            {
                "name": f"{username} account {k}",
                "platform_type": "mastodon",
                "instance_url": stub,
                "username": f"{username}_{k}",
                "access_token": f"tok-{username}_{k}-bench",
                "csrf_token": c.csrf,
            },
        )
        if status != 303:
            sys.exit(f"{server.label}: connecting a platform answered {status}: {text[:300]}")
    status, text = c.request("GET", "/dashboard")
    if status != 200 or "Working with" not in text:
        sys.exit(f"{server.label}: the dashboard answered {status}")
    return c


def wrk(url, cookie=None):
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", WRK_LUA]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout

    def ms(label):
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(re.search(r"non-200: (\d+)", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "bad": bad}


class Logins(threading.Thread):
    """8 clients signing in over and over (a password hash each), until stopped."""

    def __init__(self, port, usernames):
        super().__init__(daemon=True)
        self.port = port
        self.usernames = usernames
        self.stop_flag = threading.Event()
        self.count = 0

    def one(self, n, username):
        while not self.stop_flag.is_set():
            c = Client(self.port, ip=f"10.2.{n}.{self.count % 250 + 1}")
            c.request("GET", "/login")
            status, _ = c.request(
                "POST", "/login", {"username": username, "password": PASSWORD, "csrf_token": c.csrf}
            )
            if status == 303:
                self.count += 1
                c.request("POST", "/logout", {"csrf_token": c.csrf})

    def run(self):
        workers = [
            threading.Thread(target=self.one, args=(n, u), daemon=True)
            for n, u in enumerate(self.usernames)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


def pg_schema(name):
    subprocess.run(
        ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c",
         f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"],
        check=True,
        env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"),
    )
    return f"{PG}?options=-c%20search_path%3D{name}"


def database(engine, label, workdir):
    if engine == "sqlite":
        return f"sqlite://{workdir}/{label}.db?mode=rwc"
    return pg_schema(f"tether_bench_{label}_{os.getpid()}")


def bench_engine(engine, workdir):
    print(f"\n## {engine}\n", flush=True)
    # tether migrate on an empty database, then serving until the first answer.
    small = Server(engine, database(engine, "small", workdir), f"{engine} small")
    started = time.perf_counter()
    small.migrate()
    small.start()
    first_answer = (time.perf_counter() - started) * 1000
    print(f"tether migrate on an empty database + first answer: {first_answer:.0f} ms")

    users = [f"bench{n}" for n in range(10)]
    clients = [sign_up(small, u) for u in users]
    # The same audit and images for bench0 as on the large database.
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench/seed.py"), engine, small.url,
         "--bench-user-only"],
        check=True,
    )
    servers = [small]
    large = None
    if LARGE:
        large = Server(engine, database(engine, "large", workdir), f"{engine} large")
        large.migrate()
        large.start()
        large_client = sign_up(large, "bench0")
        large.stop()
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench/seed.py"), engine, large.url],
            check=True,
        )
        print(f"seeding the large database: {time.perf_counter() - started:.1f} s")
        large.start()
        servers.append(large)

    hello_port = free_port()
    hello = subprocess.Popen(
        [HELLO],
        env=dict(os.environ, ROCKET_PORT=str(hello_port), ROCKET_ADDRESS="127.0.0.1",
                 ROCKET_LOG_LEVEL="off", ROCKET_PROFILE="release",
                 ROCKET_SECRET_KEY=key()),
    )
    time.sleep(0.5)
    base = f"http://127.0.0.1:{small.port}"
    asset = re.search(r'/static/app\.js\?v=([0-9a-f]+)', clients[0].request("GET", "/dashboard")[1])
    cases = [
        ("hello 13 B", lambda: wrk(f"http://127.0.0.1:{hello_port}/")),
        ("hello 6 KB", lambda: wrk(f"http://127.0.0.1:{hello_port}/page")),
        ("app.js", lambda: wrk(f"{base}/static/app.js?v={asset.group(1) if asset else ''}")),
        ("healthz", lambda: wrk(f"{base}/healthz")),
        ("dashboard", lambda: sampled(small, lambda: wrk(f"{base}/dashboard", clients[0].cookie_header()))),
    ]
    if large:
        cases.append(
            ("dashboard, large", lambda: wrk(
                f"http://127.0.0.1:{large.port}/dashboard", large_client.cookie_header()))
        )

    def sampled(server, run):
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        result = run()
        sampler.stop_flag.set()
        sampler.join()
        result["rss"] = sampler.peak
        return result

    def during_logins():
        logins = Logins(small.port, users[2:])
        logins.start()
        time.sleep(0.5)
        result = wrk(f"{base}/dashboard", clients[1].cookie_header())
        logins.stop_flag.set()
        logins.join(timeout=30)
        result["logins"] = logins.count
        return result

    cases.append(("dashboard + 8 logins", during_logins))

    results = {name: [] for name, _ in cases}
    for r in range(ROUNDS):
        order = cases[r % len(cases):] + cases[: r % len(cases)]
        for name, run in order:
            results[name].append(run())
        print(f"round {r + 1} of {ROUNDS} done", flush=True)
    hello.terminate()
    hello.wait()

    med = {
        name: {k: statistics.median(x[k] for x in rs) for k in ("rps", "p50", "p99")}
        | {"bad": sum(x["bad"] for x in rs)}
        for name, rs in results.items()
    }
    hw, hz = med["hello 13 B"], med["healthz"]
    print(f"\n{ROUNDS} rounds of {SECONDS} s, {CONNECTIONS} connections, medians\n")
    print("| case | req/s | p50 ms | p99 ms | × hello req/s | × healthz req/s | p99 × hello | non-200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m in med.items():
        print(
            f"| {name} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
            f"{m['rps'] / hw['rps']:.2f} | {m['rps'] / hz['rps']:.2f} | "
            f"{m['p99'] / hw['p99']:.1f} | {m['bad']} |"
        )
    d = med["dashboard"]
    if large:
        print(f"\nlarge / small dashboard req/s: {med['dashboard, large']['rps'] / d['rps']:.2f}")
    busy = med["dashboard + 8 logins"]
    logins = statistics.median(x["logins"] for x in results["dashboard + 8 logins"])
    print(f"dashboard p99 during 8 logins / idle: {busy['p99'] / d['p99']:.2f} "
          f"({logins:.0f} logins per {SECONDS} s window)")
    rss = max(x["rss"] for x in results["dashboard"])
    print(f"peak RSS of tether during the {CONNECTIONS}-connection dashboard runs: {rss:.1f} MiB")
    for s in servers:
        print(f"peak RSS of tether ({s.label}) over its whole life, password hashing included: "
              f"{s.peak_rss_mib():.1f} MiB")
        s.stop()


def main():
    print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as workdir:
        for engine in ENGINES:
            bench_engine(engine, workdir)


if __name__ == "__main__":
    main()
