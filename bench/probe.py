#!/usr/bin/env python3
"""Load probe for failover and rolling-update benchmarks: a few keep-alive HTTPS clients that
record every request's latency and outcome (CSV: seconds since start, ms, ok). Bounded by
--seconds; stops early on SIGINT. Runs inside the bench client container on the lab network."""

import argparse
import http.client
import signal
import socket
import ssl
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--host", required=True)
parser.add_argument("--ip", required=True)
parser.add_argument("--ca", required=True)
parser.add_argument("--seconds", type=float, default=20)
parser.add_argument("--clients", type=int, default=4)
parser.add_argument("--path", default="/products.json")
parser.add_argument("--out", required=True)
args = parser.parse_args()

stop = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stop.set())
ctx = ssl.create_default_context(cafile=args.ca)
start = time.monotonic()
rows = []
lock = threading.Lock()


class Conn(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection((args.ip, 443), timeout=5)
        self.sock = ctx.wrap_socket(sock, server_hostname=args.host)


def client():
    conn = None
    while not stop.is_set() and time.monotonic() - start < args.seconds:
        t0 = time.monotonic()
        ok = False
        try:
            if conn is None:
                conn = Conn(args.host, 443, timeout=5)
            conn.request("GET", args.path, headers={"Host": args.host})
            resp = conn.getresponse()
            resp.read()
            ok = 200 <= resp.status < 300
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            rows.append((t0 - start, (time.monotonic() - t0) * 1000, ok))
        time.sleep(0.01)


threads = [threading.Thread(target=client) for _ in range(args.clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(args.out, "w") as fh:
    fh.write("t,ms,ok\n")
    for t, ms, ok in sorted(rows):
        fh.write(f"{t:.3f},{ms:.2f},{int(ok)}\n")
print(f"{len(rows)} requests, {sum(1 for r in rows if not r[2])} failed")
