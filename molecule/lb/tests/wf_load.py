#!/usr/bin/env python3
"""Bounded HTTPS load for the lb scenario, run inside a scenario container.

Threads send GETs over keep-alive connections to one address with a fixed SNI/Host name,
verifying the certificate against the internal CA. Stops after --seconds, --max-requests, or
when --stop-file appears. Prints one JSON summary: ok/failed counts, the first errors,
latency percentiles and which web server (X-Served-By) answered, per second.
"""

import argparse
import http.client
import json
import os
import socket
import ssl
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--name", default="www.webfleet.test")
    ap.add_argument("--ca", default="/etc/webfleet/tls/ca.crt")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rate", type=float, default=25.0, help="requests/s per thread")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--stop-file", default="")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--new-conn", action="store_true", help="one connection per request")
    args = ap.parse_args()

    ctx = ssl.create_default_context(cafile=args.ca)
    lock = threading.Lock()
    res = {"ok": 0, "failed": 0, "errors": [], "lat": [], "served": {}, "fail_times": []}
    start = time.time()
    deadline = start + args.seconds
    budget = [args.max_requests]

    class Conn(http.client.HTTPSConnection):
        def connect(self):
            sock = socket.create_connection((args.ip, args.port), self.timeout)
            self.sock = ctx.wrap_socket(sock, server_hostname=args.name)

    def worker():
        conn = None
        interval = 1.0 / args.rate if args.rate > 0 else 0
        while time.time() < deadline:
            if args.stop_file and os.path.exists(args.stop_file):
                return
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            t0 = time.time()
            try:
                if conn is None or args.new_conn:
                    conn = Conn(args.name, args.port, timeout=args.timeout)
                conn.request("GET", "/", headers={"Host": args.name})
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                served = resp.getheader("X-Served-By", "?")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                ok = 200 <= status < 300
                err = None if ok else f"status {status}: {body[:80]!r}"
            except Exception as exc:  # socket errors, TLS errors, resets: all failures
                ok, served, err = False, "?", f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.time()
            with lock:
                res["lat"].append(t1 - t0)
                if ok:
                    res["ok"] += 1
                    sec = str(int(t1 - start))
                    res["served"].setdefault(sec, {}).setdefault(served, 0)
                    res["served"][sec][served] += 1
                else:
                    res["failed"] += 1
                    res["fail_times"].append(round(t1, 3))
                    if len(res["errors"]) < 10:
                        res["errors"].append(err)
            pause = interval - (time.time() - t0)
            if pause > 0:
                time.sleep(pause)

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(res.pop("lat")) or [0.0]

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)

    res.update(start=round(start, 3), duration=round(time.time() - start, 2),
               total=res["ok"] + res["failed"], p50_ms=pct(0.50), p99_ms=pct(0.99),
               max_ms=round(lat[-1] * 1000, 1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
