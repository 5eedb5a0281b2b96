#!/usr/bin/env python3
"""A/B helper (bench/dashboard.sh cpu): R alternating rounds (default 3, S seconds each) of the
hello world, /healthz and /dashboard on the current release build, printing req/s, each server's
CPU per request (perf stat task-clock over the wrk run, divided by its requests) and tether's
RSS peak during the dashboard runs. ENGINE=sqlite|postgres."""
import os, sys, subprocess, tempfile, time, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard as d
d.SECONDS = int(os.environ.get("S", "4"))
w = tempfile.mkdtemp()
engine = os.environ.get("ENGINE", "sqlite")
s = d.Server(engine, d.database(engine, "q", w), "q")
s.migrate(); s.start()
c = d.sign_up(s, "bench0")
hp = d.free_port()
h = subprocess.Popen([d.HELLO], env=dict(os.environ, ROCKET_PORT=str(hp), ROCKET_LOG_LEVEL="off", ROCKET_PROFILE="release", ROCKET_SECRET_KEY=d.key()))
time.sleep(0.5)
base = f"http://127.0.0.1:{s.port}"
res = {"hello": [], "healthz": [], "dash": []}
rss = []
def measured(pid, url, cookie=None, sampler=None):
    ps = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-p", str(pid)], stderr=subprocess.PIPE, text=True)
    x = d.wrk(url, cookie)
    ps.send_signal(2); err = ps.communicate()[1]
    x["cpu_us"] = float(err.strip().splitlines()[-1].split(",")[0]) * 1e3 / (x["rps"] * d.SECONDS)
    return x
for r in range(int(os.environ.get("R", "3"))):
    res["hello"].append(measured(h.pid, f"http://127.0.0.1:{hp}/"))
    res["healthz"].append(measured(s.proc.pid, f"{base}/healthz"))
    samp = d.RssSampler(s.proc.pid); samp.start()
    res["dash"].append(measured(s.proc.pid, f"{base}/dashboard", c.cookie_header()))
    samp.stop_flag.set(); samp.join(); rss.append(samp.peak)
for k, v in res.items():
    print(k, "rps", round(statistics.median(x["rps"] for x in v)), "p99", statistics.median(x["p99"] for x in v),
          "bad", sum(x["bad"] for x in v), "server CPU µs/request", round(statistics.median(x["cpu_us"] for x in v), 1))
hw = statistics.median(x["rps"] for x in res["hello"]); hz = statistics.median(x["rps"] for x in res["healthz"]); dd = statistics.median(x["rps"] for x in res["dash"])
print("RSS peak during dashboard runs MiB:", [round(r,1) for r in rss])
print(f"dash/hello {dd/hw:.3f} dash/healthz {dd/hz:.3f} peakRSS {s.peak_rss_mib():.1f}")
h.terminate(); s.stop()
