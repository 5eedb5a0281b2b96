#!/usr/bin/env python3
"""Mixed-flow load against a running tether (see bench/load.sh), then invariant checks.

Each of N client threads is one browser: its own keep-alive connection, cookie jar, CSRF token
and X-Real-IP address (so per-address login throttling never sees two of them). Threads are
grouped 4 to an account, so several sessions of one user race each other. For a fixed time each
thread picks flows at random:

  dashboard   GET /dashboard
  switch      POST /api/switch_platform {"platform_id": N} with X-CSRF-Token
  list        GET /api/platforms (refreshes the thread's view of its platforms)
  edit        GET /platforms/<id>/edit, then POST /platforms/<id> (name, is_active, token)
  login       POST /logout, GET /login, POST /login (right password), GET /dashboard
  bad login   GET /login, POST /login with a wrong password (budgeted; must answer 401)
  delete      POST /platforms/<id>/delete, then POST /platforms (a new one) — races `switch`

Every response status is checked against what that request may answer; anything else, any 5xx
and any transport error fails the run. Afterwards every session loads /dashboard once (the
documented lazy repair of a stale active platform), and the database is checked directly.

Platforms connect to the stub instance load.sh starts (TETHER_STUB_URL, bench/stub_instance.py):
tether verifies each new token with it, so every create and every edit with a new token makes
one loopback verify_credentials call. The stub accepts tokens named tok-<account>-…; platform
accounts are named load<u>_<k> (set-up) and acct<n>x<k> (created during the load), one account
per platform because a user cannot connect the same account on the same instance twice.

  python3 bench/load.py run        # env: TETHER_LOAD_* (see load.sh)
  python3 bench/load.py logcheck FILE

Only talks to 127.0.0.1. Exits 1 when any check fails.
"""
import collections
import http.client
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

HOST = "127.0.0.1"
PASSWORD = "load test password 42"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def env_int(name, default):
    return int(os.environ.get(name, default))


PORT = env_int("TETHER_LOAD_PORT", 8766)
SECONDS = float(os.environ.get("TETHER_LOAD_SECONDS", "60"))
CONNECTIONS = env_int("TETHER_LOAD_CONNECTIONS", 64)
PER_USER = env_int("TETHER_LOAD_SESSIONS_PER_USER", 4)
PLATFORMS = env_int("TETHER_LOAD_PLATFORMS", 3)
DELETES = os.environ.get("TETHER_LOAD_DELETES", "1") != "0"
STUB_URL = os.environ["TETHER_STUB_URL"]
SEED = env_int("TETHER_LOAD_SEED", 1)

# Relative weights of the flows each thread picks from.
WEIGHTS = {
    "dashboard": 40,
    "switch": 30,
    "list": 5,
    "edit": 15,
    "login": 2,
    "bad login": 1,
    "delete": 2 if DELETES else 0,
}
BAD_LOGINS_PER_THREAD = 8  # well under the 20-per-address limit
DECOYS = 2  # accounts that receive the wrong-password attempts, at most 4 each (limit 5)

# What each request may answer: status -> required Location prefix (None: not a redirect).
EXPECTED = {
    "GET /dashboard": {200: None, 303: "/platforms/new"},
    "GET /platforms/new": {200: None},
    "POST /api/switch_platform": {200: None, 404: None, 422: None},
    "GET /api/platforms": {200: None},
    "GET /platforms/<id>/edit": {200: None, 404: None},
    "POST /platforms/<id>": {303: "/platforms", 404: None},
    "POST /logout": {303: "/login"},
    "GET /login": {200: None},
    "POST /login (right password)": {303: "/dashboard"},
    "POST /login (wrong password)": {401: None},
    "POST /platforms/<id>/delete": {303: "/platforms", 404: None},
    "POST /platforms (create)": {303: "/dashboard"},
}


def ip(n):
    """A client address in 198.18.0.0/15, the benchmarking range."""
    return f"198.{18 + ((n >> 16) & 1)}.{(n >> 8) & 255}.{n & 255}"


class Stats:
    def __init__(self):
        self.times = collections.defaultdict(list)
        # Latencies of subsets of a request (not in the table, not in the totals).
        self.side = collections.defaultdict(list)
        self.status = collections.defaultdict(collections.Counter)
        self.unexpected = []  # (wall time, request, method, path, status, location, body)
        self.unexpected_count = 0
        self.transport = []  # (request, path, error)

    def merge(self, other):
        for k, v in other.times.items():
            self.times[k].extend(v)
        for k, v in other.side.items():
            self.side[k].extend(v)
        for k, v in other.status.items():
            self.status[k].update(v)
        self.unexpected.extend(other.unexpected)
        self.unexpected_count += other.unexpected_count
        self.transport.extend(other.transport)


class Browser:
    """One user agent: a keep-alive connection, a cookie jar and the current CSRF token."""

    def __init__(self, n, stats):
        self.n = n
        self.ip = ip(n)
        self.stats = stats
        self.cookies = {}
        self.csrf = ""
        self.conn = None

    def _send(self, method, path, body, headers):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
            try:
                start = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp, data, time.perf_counter() - start
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before reading the request:
                # nothing was processed, so sending it again on a new connection is safe.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def request(self, name, method, path, body=None, headers=None, record=True, side=None):
        h = {"X-Real-IP": self.ip, "User-Agent": f"tether-load/{self.n}"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if headers:
            h.update(headers)
        try:
            resp, data, elapsed = self._send(method, path, body, h)
        except Exception as e:  # noqa: BLE001 — every transport failure is reported
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.stats.transport.append((name, path, repr(e)))
            return None, "", None
        for value in resp.headers.get_all("Set-Cookie") or []:
            pair = value.split(";", 1)[0]
            cname, _, val = pair.partition("=")
            if val == "" or "Max-Age=0" in value:
                self.cookies.pop(cname, None)
            else:
                self.cookies[cname] = val
        text = data.decode("utf-8", "replace")
        match = CSRF_META.search(text)
        if match:
            self.csrf = match.group(1)
        location = resp.headers.get("Location")
        if record:
            self.stats.times[name].append(elapsed)
            if side:
                self.stats.side[side].append(elapsed)
            self.stats.status[name][resp.status] += 1
            allowed = EXPECTED[name]
            ok = resp.status in allowed and (
                allowed[resp.status] is None
                or (location or "").startswith(allowed[resp.status])
            )
            if not ok:
                self.stats.unexpected_count += 1
                if len(self.stats.unexpected) < 20:
                    self.stats.unexpected.append(
                        (
                            time.strftime("%H:%M:%S"),
                            name,
                            method,
                            path,
                            resp.status,
                            location,
                            (body or "")[:200] if isinstance(body, str) else "",
                            text[:300],
                        )
                    )
        if resp.headers.get("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, text, location

    def form(self, name, path, fields, **kw):
        return self.request(
            name,
            "POST",
            path,
            body=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            **kw,
        )


class Worker(threading.Thread):
    def __init__(self, n, username, decoys):
        super().__init__(daemon=True)
        self.n = n
        self.username = username
        self.stats = Stats()
        self.b = Browser(n, self.stats)
        self.rng = random.Random(SEED * 1000 + n)
        self.platforms = []  # the last /api/platforms answer
        self.bad_logins = 0
        self.created = 0
        self.decoys = decoys
        self.logins = 0

    # --- flows ----------------------------------------------------------------------------------
    def login(self):
        b = self.b
        b.request("GET /login", "GET", "/login")
        status, _, _ = b.form(
            "POST /login (right password)",
            "/login",
            {"username": self.username, "password": PASSWORD, "csrf_token": b.csrf},
        )
        if status == 303:
            self.logins += 1
        self.dashboard()

    def relogin(self):
        self.b.form("POST /logout", "/logout", {"csrf_token": self.b.csrf})
        self.login()

    def bad_login(self):
        if self.bad_logins >= BAD_LOGINS_PER_THREAD:
            return self.dashboard()
        self.bad_logins += 1
        anon = Browser(self.n, self.stats)  # same address, empty cookie jar
        anon.conn = self.b.conn
        anon.request("GET /login", "GET", "/login")
        target = self.decoys.take()
        if target is None:
            target = f"ghost-{self.n}-{self.bad_logins}"
        anon.form(
            "POST /login (wrong password)",
            "/login",
            {"username": target, "password": "not the password", "csrf_token": anon.csrf},
        )
        self.b.conn = anon.conn

    def dashboard(self):
        status, _, _ = self.b.request("GET /dashboard", "GET", "/dashboard")
        if status == 303:  # no active platform left: the setup page, as a browser follows
            self.b.request("GET /platforms/new", "GET", "/platforms/new")

    def refresh(self):
        status, text, _ = self.b.request("GET /api/platforms", "GET", "/api/platforms")
        if status == 200:
            self.platforms = json.loads(text)["platforms"]

    def pick(self):
        if not self.platforms:
            self.refresh()
        return self.rng.choice(self.platforms) if self.platforms else None

    def switch(self):
        p = self.pick()
        if p is None:
            return
        self.b.request(
            "POST /api/switch_platform",
            "POST",
            "/api/switch_platform",
            body=json.dumps({"platform_id": p["id"]}),
            headers={"Content-Type": "application/json", "X-CSRF-Token": self.b.csrf},
        )

    def edit(self):
        p = self.pick()
        if p is None:
            return
        status, _, _ = self.b.request(
            "GET /platforms/<id>/edit", "GET", f"/platforms/{p['id']}/edit"
        )
        if status != 200:
            self.refresh()
            return
        fields = {
            # Names carry the id, so concurrent edits never collide on the per-user unique name.
            "name": f"Account {p['id']} v{self.rng.randrange(1000)}",
            "platform_type": p["platform_type"],
            "instance_url": p["instance_url"],
            "username": p["username"],
            "access_token": (
                f"tok-{p['username']}-{self.rng.randrange(10**9)}" if self.rng.random() < 0.1 else ""
            ),
            "csrf_token": self.b.csrf,
        }
        if self.rng.random() < 0.75:
            fields["is_active"] = "true"
        side = "new token" if fields["access_token"] else "same token"
        self.b.form("POST /platforms/<id>", f"/platforms/{p['id']}", fields, side=side)

    def delete(self):
        p = self.pick()
        if p is None:
            return
        status, _, _ = self.b.form(
            "POST /platforms/<id>/delete", f"/platforms/{p['id']}/delete", {"csrf_token": self.b.csrf}
        )
        if status == 303:
            self.create()
        self.refresh()

    def create(self, record=True):
        self.created += 1
        kind = self.rng.choice(["mastodon", "pixelfed"])
        account = f"acct{self.n}x{self.created}"
        fields = {
            "name": f"Conn {self.n}-{self.created}",
            "platform_type": kind,
            "instance_url": STUB_URL,
            "username": account,
            "access_token": f"tok-{account}-{self.rng.randrange(10**9)}",
            "csrf_token": self.b.csrf,
        }
        return self.b.form("POST /platforms (create)", "/platforms", fields, record=record)

    # --- loop -----------------------------------------------------------------------------------
    def setup(self):
        self.login()
        self.refresh()

    def run(self):
        flows = {
            "dashboard": self.dashboard,
            "switch": self.switch,
            "list": self.refresh,
            "edit": self.edit,
            "login": self.relogin,
            "bad login": self.bad_login,
            "delete": self.delete,
        }
        names = [k for k, w in WEIGHTS.items() if w > 0]
        weights = [WEIGHTS[k] for k in names]
        START.wait()
        while time.monotonic() < DEADLINE[0]:
            flows[self.rng.choices(names, weights)[0]]()


class Decoys:
    """Wrong passwords go to a few accounts, at most 4 each, so none reaches the lock at 5."""

    def __init__(self, names):
        self.left = [(n, 4) for n in names]
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            for i, (name, left) in enumerate(self.left):
                if left > 0:
                    self.left[i] = (name, left - 1)
                    return name
        return None


START = threading.Event()
DEADLINE = [0.0]


def register(n, username, stats):
    b = Browser(n, stats)
    b.request("GET /login", "GET", "/register", record=False)
    status, _, _ = b.form(
        "POST /login (right password)",
        "/register",
        {
            "username": username,
            "email": f"{username}@load.example",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "csrf_token": b.csrf,
        },
        record=False,
    )
    if status != 303:
        sys.exit(f"registering {username} answered {status}")
    b.request("GET /platforms/new", "GET", "/platforms/new", record=False)  # the session's token
    return b


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(sorted_xs, p):
    """Nearest-rank percentile."""
    if not sorted_xs:
        return float("nan")
    return sorted_xs[max(0, math.ceil(p / 100 * len(sorted_xs)) - 1)]


# --- database checks ----------------------------------------------------------------------------
CHECKS = [
    (
        "users with more than one default platform",
        "SELECT user_id, COUNT(*) FROM platform_connections WHERE is_default "
        "GROUP BY user_id HAVING COUNT(*) > 1",
    ),
    (
        "users with an active platform but not exactly one default",
        "SELECT u.id, (SELECT COUNT(*) FROM platform_connections d "
        "WHERE d.user_id = u.id AND d.is_default) FROM users u "
        "WHERE EXISTS (SELECT 1 FROM platform_connections a WHERE a.user_id = u.id AND a.is_active) "
        "AND (SELECT COUNT(*) FROM platform_connections d WHERE d.user_id = u.id AND d.is_default) <> 1",
    ),
    (
        "default platforms that are inactive",
        "SELECT id, user_id FROM platform_connections WHERE is_default AND NOT is_active",
    ),
    (
        "sessions whose active platform is missing",
        "SELECT s.id, s.active_platform_id FROM user_sessions s "
        "LEFT JOIN platform_connections p ON p.id = s.active_platform_id "
        "WHERE s.active_platform_id IS NOT NULL AND p.id IS NULL",
    ),
    (
        "sessions whose active platform is another user's",
        "SELECT s.id, s.user_id, p.id, p.user_id FROM user_sessions s "
        "JOIN platform_connections p ON p.id = s.active_platform_id WHERE p.user_id <> s.user_id",
    ),
    (
        "sessions whose active platform is inactive",
        "SELECT s.id, p.id FROM user_sessions s "
        "JOIN platform_connections p ON p.id = s.active_platform_id WHERE NOT p.is_active",
    ),
]
ADMINS = "SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active"


def sql(query):
    """Rows of `query` on the benchmark's database, as lists of strings."""
    engine = os.environ["TETHER_LOAD_ENGINE"]
    if engine == "sqlite":
        import sqlite3

        db = sqlite3.connect(os.environ["TETHER_LOAD_SQLITE"], timeout=30)
        try:
            return [[str(c) for c in row] for row in db.execute(query).fetchall()]
        finally:
            db.close()
    out = subprocess.run(
        ["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
        env=dict(os.environ, PGOPTIONS=f"-c search_path={os.environ['TETHER_LOAD_SCHEMA']}"),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def invariant_report(label):
    failures = []
    print(f"\nInvariants ({label}):")
    for name, query in CHECKS:
        rows = sql(query)
        print(f"- {name}: {len(rows)}" + (f"  e.g. {rows[:5]}" if rows else ""))
        if rows:
            failures.append(name)
    return failures


# --- run ----------------------------------------------------------------------------------------
def run():
    pid = int(os.environ["TETHER_LOAD_PID"])
    engine = os.environ.get("TETHER_LOAD_ENGINE", "?")
    users = max(1, (CONNECTIONS + PER_USER - 1) // PER_USER)
    setup_stats = Stats()
    t0 = time.monotonic()

    # Accounts and their platforms, over HTTP like a person would.
    for u in range(users):
        b = register(50000 + u, f"load{u}", setup_stats)
        for k in range(PLATFORMS):
            kind = "mastodon" if k % 2 == 0 else "pixelfed"
            status, text, _ = b.form(
                "POST /platforms (create)",
                "/platforms",
                {
                    "name": f"Account {u}.{k}",
                    "platform_type": kind,
                    "instance_url": STUB_URL,
                    "username": f"load{u}_{k}",
                    "access_token": f"tok-load{u}_{k}-{u}.{k}",
                    "csrf_token": b.csrf,
                },
                record=False,
            )
            if status != 303:
                errors = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', text)
                sys.exit(f"creating a platform for load{u} answered {status}: {errors or text[-300:]!r}")
            b.request("GET /dashboard", "GET", "/dashboard", record=False)
        b.form("POST /logout", "/logout", {"csrf_token": b.csrf}, record=False)
    for d in range(DECOYS):
        b = register(60000 + d, f"decoy{d}", setup_stats)
        b.form("POST /logout", "/logout", {"csrf_token": b.csrf}, record=False)
    decoys = Decoys([f"decoy{d}" for d in range(DECOYS)])

    workers = [Worker(n + 1, f"load{n // PER_USER}", decoys) for n in range(CONNECTIONS)]
    setup_threads = [threading.Thread(target=w.setup) for w in workers]
    for t in setup_threads:
        t.start()
    for t in setup_threads:
        t.join()
    setup_logins = sum(w.logins for w in workers)
    for w in workers:
        w.logins = 0
        setup_stats.merge(w.stats)
        w.stats.__init__()  # the timed window starts clean
        w.b.stats = w.stats
    setup_seconds = time.monotonic() - t0

    for w in workers:
        w.start()
    load0 = os.getloadavg()[0]
    cpu_server0, cpu_client0 = proc_cpu_seconds(pid), sum(os.times()[:2])
    rss_peak = proc_rss_mib(pid)
    start = time.monotonic()
    DEADLINE[0] = start + SECONDS
    START.set()
    while time.monotonic() < DEADLINE[0]:
        time.sleep(0.5)
        rss_peak = max(rss_peak, proc_rss_mib(pid))
    for w in workers:
        w.join(timeout=60)
    window = time.monotonic() - start
    load1 = os.getloadavg()[0]
    cpu_server = (proc_cpu_seconds(pid) - cpu_server0) / window
    cpu_client = (sum(os.times()[:2]) - cpu_client0) / window
    stuck = [w.n for w in workers if w.is_alive()]

    stats = Stats()
    for w in workers:
        stats.merge(w.stats)
    logins = sum(w.logins for w in workers)

    total = sum(len(v) for v in stats.times.values())
    print(
        f"\n### {engine}: {CONNECTIONS} connections ({users} accounts × {PER_USER} sessions, "
        f"{PLATFORMS} platforms each), {window:.1f} s\n"
    )
    print("| request | count | req/s | p50 ms | p99 ms | 2xx | 3xx | 4xx | 5xx |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    order = [k for k in EXPECTED if stats.times.get(k)]
    for name in order:
        xs = sorted(stats.times[name])
        c = stats.status[name]
        cls = [sum(v for s, v in c.items() if s // 100 == k) for k in (2, 3, 4, 5)]
        print(
            f"| {name} | {len(xs)} | {len(xs) / window:.1f} | {pct(xs, 50) * 1000:.1f} | "
            f"{pct(xs, 99) * 1000:.1f} | " + " | ".join(str(x) for x in cls) + " |"
        )
    alls = sorted(x for v in stats.times.values() for x in v)
    c_all = collections.Counter()
    for v in stats.status.values():
        c_all.update(v)
    cls = [sum(v for s, v in c_all.items() if s // 100 == k) for k in (2, 3, 4, 5)]
    print(
        f"| **all** | {total} | {total / window:.1f} | {pct(alls, 50) * 1000:.1f} | "
        f"{pct(alls, 99) * 1000:.1f} | " + " | ".join(str(x) for x in cls) + " |"
    )
    for side in ("same token", "new token"):
        xs = sorted(stats.side[side])
        if xs:
            print(
                f"\n`POST /platforms/<id>` with the {side}: {len(xs)}, p50 "
                f"{pct(xs, 50) * 1000:.1f} ms, p99 {pct(xs, 99) * 1000:.1f} ms"
                + (" (verified with the stub instance)" if side == "new token" else "")
            )
    print("\nStatuses:")
    for name in order:
        detail = ", ".join(f"{s}×{v}" for s, v in sorted(stats.status[name].items()))
        print(f"- {name}: {detail}")
    print(
        f"\nSetup {setup_seconds:.1f} s ({users + DECOYS} registrations, {users * PLATFORMS} "
        f"platforms, {setup_logins} logins). Server CPU {cpu_server * 100:.0f}% of one core, "
        f"load client CPU {cpu_client * 100:.0f}% (of {os.cpu_count()} cores in all); "
        f"server RSS peak {rss_peak:.1f} MiB. Machine load average (1 min) {load0:.1f} before "
        f"the window, {load1:.1f} after."
    )

    failures = []
    if setup_stats.unexpected_count or setup_stats.transport:
        failures.append("unexpected answers while signing in before the window")
        print(f"\nSetup problems: {setup_stats.unexpected[:5]} {setup_stats.transport[:5]}")
    if stats.unexpected_count:
        failures.append(f"{stats.unexpected_count} unexpected statuses")
        print(f"\nUnexpected statuses: {stats.unexpected_count} (first {len(stats.unexpected)}):")
        for row in stats.unexpected:
            t, name, method, path, status, location, body, text = row
            snippet = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[-200:]
            print(
                f"- {t} {method} {path} [{name}] -> {status} location={location!r} "
                f"sent={body!r} answer=…{snippet.strip()!r}"
            )
    if stats.transport:
        failures.append(f"{len(stats.transport)} transport errors")
        print(f"\nTransport errors: {len(stats.transport)}, e.g. {stats.transport[:5]}")
    if stuck:
        failures.append(f"threads still running after the window: {stuck}")
    audit_check = (logins + setup_logins, stats.status["POST /login (wrong password)"][401])

    # State as the load left it: a session may still name a platform that another session
    # deactivated; PlatformContext repairs that on the session's next request (by design).
    invariant_report("as the load left them")
    for w in workers:
        w.b.request("GET /dashboard", "GET", "/dashboard", record=False)
    failures += invariant_report("after each session's next request")
    admins = int(sql(ADMINS)[0][0])
    print(f"- active administrators: {admins}")
    if admins < 1:
        failures.append("no active administrator")
    sessions = int(sql("SELECT COUNT(*) FROM user_sessions")[0][0])
    print(f"- sessions in the database: {sessions} (one per connection: {CONNECTIONS})")
    if sessions != CONNECTIONS:
        failures.append(f"{sessions} sessions for {CONNECTIONS} connections")
    ok_rows = int(sql("SELECT COUNT(*) FROM audit_events WHERE action = 'login.success'")[0][0])
    bad_rows = int(sql("SELECT COUNT(*) FROM audit_events WHERE action = 'login.failure'")[0][0])
    print(
        f"- audit: {ok_rows} login.success rows for {audit_check[0]} successful logins, "
        f"{bad_rows} login.failure rows for {audit_check[1]} answered 401"
    )
    if (ok_rows, bad_rows) != audit_check:
        failures.append("audit trail does not match the logins answered")
    per_user = sql("SELECT COUNT(*) FROM platform_connections GROUP BY user_id")
    print(f"- platforms per account: {sorted(set(int(r[0]) for r in per_user))} (started at {PLATFORMS})")

    print()
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("OK: no 5xx, no unexpected status, invariants hold")
    return 0


# --- server log ---------------------------------------------------------------------------------
# Rocket 0.5's logger writes an error-level record as "Error: <message>" at the start of a line,
# or, for its indented records, as "   >> <message>" with no level marker. The indented
# error-level messages Rocket itself emits while serving are these:
ROCKET_INDENTED_ERRORS = re.compile(
    r"^   >> (No matching routes for |Handler .* panicked|A handler panicked|Catcher failed|"
    r"\d+ catcher failed|Error reading body|Body is invalid UTF-8|Invalid status used as "
    r"responder|JSON failed to serialize|MsgPack failed to serialize|Failed to read into peek)"
)


def logcheck(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    errors = [l for l in lines if l.startswith("Error:") or ROCKET_INDENTED_ERRORS.match(l)]
    panics = [l for l in lines if "panicked" in l]
    warnings = [l for l in lines if l.startswith("Warning:")]
    naive = [l for l in lines if re.search("error|Error|panicked", l)]
    outcomes = collections.Counter(
        m.group(1) for l in lines for m in [re.search(r"Outcome: (\w+\(\d+)", l)] if m
    )
    print(f"\nServer log {path}: {len(lines)} lines")
    print(f"- error-level lines (Rocket `Error:` records and its indented error messages): {len(errors)}")
    for l in collections.Counter(re.sub(r"\d+", "N", l) for l in errors).most_common(10):
        print(f"    {l[1]}× {l[0][:200]}")
    print(f"- lines with `panicked`: {len(panics)}")
    print(f"- `Warning:` lines: {len(warnings)}")
    for l in collections.Counter(re.sub(r"\d+", "N", l) for l in warnings).most_common(5):
        print(f"    {l[1]}× {l[0][:200]}")
    print(
        f"- lines matching error|Error|panicked at all: {len(naive)} "
        "(includes info-level `Outcome: Error(4xx)` lines for guard failures, not errors)"
    )
    print(f"- request outcomes: {dict(sorted(outcomes.items()))}")
    return 1 if errors or panics else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "logcheck":
        sys.exit(logcheck(sys.argv[2]))
    sys.exit(run())
