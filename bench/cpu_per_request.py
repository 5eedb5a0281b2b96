#!/usr/bin/env python3
"""A/B helper (bench/dashboard.sh cpu): R alternating rounds (default 3, S seconds each) of the
hello world, /healthz and /dashboard on the current release build, printing req/s, the server's
CPU per dashboard request (perf stat task-clock over the wrk run, divided by its requests) and
its RSS peak during the dashboard runs. ENGINE=sqlite|postgres."""
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
for r in range(int(os.environ.get("R", "3"))):
    res["hello"].append(d.wrk(f"http://127.0.0.1:{hp}/"))
    res["healthz"].append(d.wrk(f"{base}/healthz"))
    ps = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-p", str(s.proc.pid)], stderr=subprocess.PIPE, text=True)
    samp = d.RssSampler(s.proc.pid); samp.start()
    x = d.wrk(f"{base}/dashboard", c.cookie_header())
    samp.stop_flag.set(); samp.join(); rss.append(samp.peak)
    ps.send_signal(2); err = ps.communicate()[1]
    ins = float(err.strip().splitlines()[-1].split(",")[0]) * 1e6
    x["ipr"] = ins / (x["rps"] * d.SECONDS)
    res["dash"].append(x)
for k, v in res.items():
    print(k, "rps", round(statistics.median(x["rps"] for x in v)), "p99", statistics.median(x["p99"] for x in v), "bad", sum(x["bad"] for x in v))
hw = statistics.median(x["rps"] for x in res["hello"]); hz = statistics.median(x["rps"] for x in res["healthz"]); dd = statistics.median(x["rps"] for x in res["dash"])
print("server CPU µs per dashboard request:", [round(x["ipr"]/1000) for x in res["dash"]])
print("RSS peak during dashboard runs MiB:", [round(r,1) for r in rss])
print(f"dash/hello {dd/hw:.3f} dash/healthz {dd/hz:.3f} peakRSS {s.peak_rss_mib():.1f}")
h.terminate(); s.stop()
