#!/usr/bin/env python3
"""Measures what issue 3 promises about logins, against a running tether (see bench/run.sh).

1. Failed logins take about the same time whether the username exists or not.
2. A flood of logins does not stall other requests (/healthz stays fast) and memory stays bounded.
3. For scale: dashboard latency for a signed-in user.

Only talks to 127.0.0.1; the platform connects to the stub instance bench/run.sh starts
(TETHER_STUB_URL, see bench/stub_instance.py), which tether asks to verify the token. Prints a
Markdown table of medians and ratios measured in this run.
"""
import http.client
import json
import os
import re
import statistics
import sys
import threading
import time

HOST = "127.0.0.1"
PORT = int(os.environ.get("TETHER_BENCH_PORT", "8765"))
PID = int(os.environ["TETHER_BENCH_PID"])
PASSWORD = "correct horse battery staple"
# The stand-in instance (bench/stub_instance.py): it accepts tokens named tok-<username>-….
STUB_URL = os.environ["TETHER_STUB_URL"]


class Browser:
    def __init__(self, ip):
        self.cookies = {}
        self.ip = ip

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
        h = {"X-Real-IP": self.ip}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if headers:
            h.update(headers)
        start = time.perf_counter()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - start
        for value in resp.headers.get_all("Set-Cookie") or []:
            pair = value.split(";", 1)[0]
            name, _, val = pair.partition("=")
            if val == "" or "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        conn.close()
        return resp.status, data.decode("utf-8", "replace"), elapsed

    def csrf(self, path):
        _, body, _ = self.request("GET", path)
        match = re.search(r'<meta name="csrf-token" content="([^"]*)"', body)
        return match.group(1)

    def post_form(self, path, fields):
        from urllib.parse import urlencode

        return self.request(
            "POST",
            path,
            body=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def ip(n):
    """A client address for the X-Real-IP header (198.18.0.0/15, the benchmarking range)."""
    return f"198.{18 + ((n >> 16) & 1)}.{(n >> 8) & 255}.{n & 255}"


def register(name, n):
    b = Browser(ip(n))
    token = b.csrf("/register")
    status, _, _ = b.post_form(
        "/register",
        {
            "username": name,
            "email": f"{name}@bench.example",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "csrf_token": token,
        },
    )
    assert status == 303, status
    return b


def failed_login(username, n):
    """One failed login from a fresh address; returns (status, seconds)."""
    b = Browser(ip(n))
    token = b.csrf("/login")
    status, _, elapsed = b.post_form(
        "/login", {"username": username, "password": "wrong password!", "csrf_token": token}
    )
    return status, elapsed


def rss_kib(field):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def median_ms(xs):
    return statistics.median(xs) * 1000


def main():
    rounds = int(os.environ.get("TETHER_BENCH_ROUNDS", "40"))
    rows = []

    # 1. Existing vs unknown usernames, interleaved so machine noise hits both alike.
    users = [f"bench{i}" for i in range(rounds)]
    for i, name in enumerate(users):
        register(name, 1000 + i)
    existing, unknown = [], []
    for i in range(rounds):
        s1, t1 = failed_login(users[i], 2000 + i)
        s2, t2 = failed_login(f"ghost{i}", 3000 + i)
        assert s1 == 401 and s2 == 401, (s1, s2)
        existing.append(t1)
        unknown.append(t2)
    rows.append(("failed login, existing user (wrong password)", median_ms(existing), ""))
    rows.append(("failed login, unknown user", median_ms(unknown), ""))
    rows.append(("ratio unknown / existing", statistics.median(unknown) / statistics.median(existing), "ratio"))

    # 2. /healthz latency idle, then during a flood of concurrent logins.
    probe = Browser(ip(9))

    def healthz_samples(n, pause):
        out = []
        for _ in range(n):
            status, _, t = probe.request("GET", "/healthz")
            assert status == 200
            out.append(t)
            time.sleep(pause)
        return out

    idle = healthz_samples(50, 0.01)
    rss_before = rss_kib("VmRSS:")
    flood_size = int(os.environ.get("TETHER_BENCH_FLOOD", "64"))
    done = threading.Event()
    flood_times = []

    def flood_worker(k):
        while not done.is_set():
            _, t = failed_login(f"flood{k}-{time.monotonic_ns()}", 5000 + k)
            flood_times.append(t)

    threads = [threading.Thread(target=flood_worker, args=(k,)) for k in range(flood_size)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    peak_rss = rss_before
    busy = []
    for _ in range(50):
        status, _, t = probe.request("GET", "/healthz")
        assert status == 200
        busy.append(t)
        peak_rss = max(peak_rss, rss_kib("VmRSS:"))
        time.sleep(0.01)
    done.set()
    for t in threads:
        t.join()
    rows.append(("/healthz, idle", median_ms(idle), ""))
    rows.append((f"/healthz during {flood_size} concurrent logins", median_ms(busy), ""))
    rows.append(("ratio busy / idle", statistics.median(busy) / statistics.median(idle), "ratio"))
    rows.append((f"one login during the flood ({len(flood_times)} logins)", median_ms(flood_times), ""))
    rows.append(("server RSS before flood (MiB)", rss_before / 1024, "mib"))
    rows.append(("server RSS peak during flood (MiB)", peak_rss / 1024, "mib"))

    # 3. Dashboard for a signed-in user with one platform.
    b = register("dash", 7)
    token = b.csrf("/platforms/new")
    status, _, _ = b.post_form(
        "/platforms",
        {
            "name": "Main",
            "platform_type": "mastodon",
            "instance_url": STUB_URL,
            "username": "dash",
            "access_token": "tok-dash-bench",
            "csrf_token": token,
        },
    )
    assert status == 303, status
    dash = []
    for _ in range(200):
        status, _, t = b.request("GET", "/dashboard")
        assert status == 200, status
        dash.append(t)
    rows.append(("GET /dashboard, signed in (200 sequential)", median_ms(dash), ""))

    print(f"| measurement ({os.environ.get('TETHER_BENCH_ENGINE', '?')}) | median |")
    print("| --- | --- |")
    for name, value, kind in rows:
        if kind == "ratio":
            print(f"| {name} | {value:.3f} |")
        elif kind == "mib":
            print(f"| {name} | {value:.1f} MiB |")
        else:
            print(f"| {name} | {value:.1f} ms |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
