#!/usr/bin/env python3
"""Instructions per dashboard request (bench/dashboard.sh callgrind): tether under valgrind's
callgrind, 20 requests to warm up, counters zeroed, N more (default 200), dumped. Instruction
counts do not depend on what else the machine runs. TOP=<chars> prints the start of the
inclusive profile. ENGINE=sqlite|postgres. URL_PATH=/healthz measures another path (signed in). IMAGES=1 gives
the account the dashboard benchmark's audit of 100 images."""
import os, sys, subprocess, tempfile, time, glob, http.client
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard as d
w = tempfile.mkdtemp()
engine = os.environ.get("ENGINE", "sqlite")
s = d.Server(engine, d.database(engine, "cg", w), "cg")
s.migrate()
out = f"{w}/callgrind.out"
s.proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", d.TETHER, "serve"], env=s.env, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while time.time() < deadline:
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5); c.request("GET", "/healthz")
        if c.getresponse().status == 200: break
    except OSError: time.sleep(0.2)
cl = d.sign_up(s, "bench0")
if os.environ.get("IMAGES") == "1":
    # The benchmark's audit of 100 images on bench0's active account (bench/seed.py).
    subprocess.run([sys.executable, os.path.join(d.ROOT, "bench/seed.py"), engine, s.url,
                    "--bench-user-only"], check=True, stdout=subprocess.DEVNULL)
N = int(os.environ.get("N", "200"))
path = os.environ.get("URL_PATH", "/dashboard")
for _ in range(20): cl.request("GET", path)
subprocess.run(["callgrind_control", "-z", str(s.proc.pid)], stdout=subprocess.DEVNULL)
for _ in range(N):
    st, _ = cl.request("GET", path); assert st == 200
subprocess.run(["callgrind_control", "-d", str(s.proc.pid)], stdout=subprocess.DEVNULL)
time.sleep(1)
s.proc.terminate(); s.proc.wait()
# callgrind_control -d writes the counts since the zeroing to <out>.1.
dump = sorted(glob.glob(out + ".*"))[0]
total = int([line for line in open(dump) if line.startswith("summary:")][-1].split()[1])
print(f"instructions per {path} request: {total / N / 1000:.0f} k ({dump})")
if os.environ.get("TOP"):
    print(subprocess.run(["callgrind_annotate", "--inclusive=yes", dump], capture_output=True, text=True).stdout[:int(os.environ.get("TOP"))])
