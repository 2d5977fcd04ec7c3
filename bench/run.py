#!/usr/bin/env python3
"""make bench: how fast and how safely a change reaches the fleet, measured on the lab.

Sections (each bounded in requests and seconds; all traffic stays on the lab's own Docker
networks or 127.0.0.1):
  converge  lab converge from bare containers, then the rerun section
  rerun     the idempotent re-run of the converged lab, stock and with the Mitogen strategy
            (opt-in, not used by CI); where the stock re-run's CPU went (containers, controller,
            Docker engine) and what one module run costs inside a container
  scale     converge time of the web tier with 6, 12 and 24 web hosts
  http      HTTPS requests/s and p99 through the LB, straight to the LB's primary web servers at
            once (the LB's goal is a share of that), straight to one nginx, and to Debian's stock
            nginx with the same certificate (wrk, keepalive, small static file)
  failover  crash (stop) and hang (SIGSTOP) of a web server under load: detection time in the
            LB's runtime API and failed requests
  rolling   rolling update of every web server under load: failed requests, worst latency

Writes bench/results/<date>.json and bench/results/<date>.md with PNG plots.
  bench/run.py                      everything
  bench/run.py --only http,failover one or more sections (the lab must be up for those)
  bench/run.py --only scale --merge add sections to today's results (a report built in parts)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(REPO, "bench", "results")
LOGS = os.path.join(REPO, ".cache", "bench-logs")  # ansible-playbook output of each run
ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
           ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
           ANSIBLE_VAULT_IDENTITY_LIST="lab@" + os.path.join(REPO, "inventories/lab/vault-pass.txt"))
CLIENT = "wf-bench-client"
# The load generator's addresses on wf-lab-east and wf-lab-wan: lab_load_generators in
# inventories/lab/group_vars/lab/main.yml.
CLIENT_IPS = ("10.230.1.240", "10.230.0.240")
STOCK = "wf-bench-stock"
STOCK_IP = "10.230.1.250"
SHOP = "shop.lab.webfleet.test"
LB = {"name": "east-lb1", "container": "wf-east-lb1", "ip": "10.230.1.21"}
WEB = {"name": "east-web1", "container": "wf-east-web1", "ip": "10.230.1.11"}
# Web-host counts of the scale section (WEBFLEET_BENCH_SCALE="6,12,24").
SCALE = [int(n) for n in os.environ.get("WEBFLEET_BENCH_SCALE", "6,12,24").split(",")]
GOALS = {
    "lab_converge_bare_s": ("<=", 150),
    "lab_converge_rerun_s": ("<=", 20),
    "scale_24_vs_6": ("<=", 2.5),
    "lb_vs_direct_rps": (">=", 0.4),
    "ours_vs_stock_rps": (">=", 1.0),
    "crash_detect_s": ("<=", 1.0),
    "hang_detect_s": ("<=", 3.0),
    "crash_failed_requests": ("<=", 0),
    "rolling_failed_requests": ("<=", 0),
    "rolling_worst_latency_ms": ("<=", 100),
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, timeout=1800, check=True, env=ENV, quiet=True):
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        # One failure type for the sections to catch: a command over its bound is a failed one.
        raise RuntimeError(f"{' '.join(cmd)} timed out after {timeout}s") from exc
    if not quiet or (check and proc.returncode):
        print(proc.stdout[-4000:], flush=True)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with rc={proc.returncode}")
    return proc


def dexec(container, command, timeout=120, check=False):
    return sh(["docker", "exec", container, "sh", "-c", command], timeout=timeout, check=check)


def put(container, path, text):
    """Write text to a file in a container (docker cp from a temporary file)."""
    with tempfile.NamedTemporaryFile("w", delete=False) as fh:
        fh.write(text)
    try:
        sh(["docker", "cp", fh.name, f"{container}:{path}"])
    finally:
        os.unlink(fh.name)


def playbook(inventory, play, *args, env=ENV, timeout=1800):
    start = time.monotonic()
    proc = sh([os.path.join(BIN, "ansible-playbook"), "-i", inventory, play, *args], env=env,
              check=False, timeout=timeout)
    took = time.monotonic() - start
    # The whole output, with profile_tasks' per-task timings, for finding where the time went.
    os.makedirs(LOGS, exist_ok=True)
    name = f"{dt.datetime.now():%Y%m%dT%H%M%S}-{os.path.basename(play).removesuffix('.yml')}.log"
    with open(os.path.join(LOGS, name), "w") as fh:
        fh.write(proc.stdout)
    changed = sum(int(c) for c in re.findall(r"changed=(\d+)", proc.stdout))
    if proc.returncode:
        print(proc.stdout[-4000:], flush=True)
        # The tail is the recap; the failed tasks themselves may be far above it.
        failed = [line[:600] for line in proc.stdout.splitlines()
                  if line.startswith(("fatal:", "failed:")) or "FAILED!" in line]
        raise RuntimeError(f"{play} failed (rc={proc.returncode}): " + " | ".join(failed[:5]))
    return took, changed


def wait_systemd(prefix, timeout=180):
    """Until every container of the prefix has booted (one shared deadline, not one per host)."""
    names = sh(["docker", "ps", "--format", "{{.Names}}"]).stdout.split()
    deadline = time.monotonic() + timeout
    for name in [n for n in names if n.startswith(prefix)]:
        while time.monotonic() < deadline:
            state = dexec(name, "systemctl is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        else:
            log(f"{name} has not finished booting after {timeout}s; going on")


# ------------------------------------------------------------------------------ converge ---
def section_converge(res):
    sh(["scripts/lab.sh", "down"])
    start = time.monotonic()
    playbook("inventories/lab", "playbooks/lab.yml", "--tags", "lab_create")
    wait_systemd("wf-")
    res["lab_create_s"] = round(time.monotonic() - start, 1)
    took, changed = playbook("inventories/lab", "playbooks/site.yml")
    res["lab_converge_bare_s"] = round(took, 1)
    section_rerun(res)


def section_rerun(res):
    """The idempotent re-run of a converged lab, stock and with Mitogen."""
    before = cpu_counters()
    took, changed = playbook("inventories/lab", "playbooks/site.yml")
    res["lab_rerun_cpu"] = cpu_split(before, cpu_counters(), took)
    res["lab_converge_rerun_s"] = round(took, 1)
    res["lab_converge_rerun_changed"] = changed
    log(f"lab converge re-run {took:.1f}s changed={changed}; CPU {res['lab_rerun_cpu']}")
    res["module_cost"] = module_cost()
    log(f"one module run: {res['module_cost']}")
    try:
        import ansible_mitogen  # noqa: F401  (opt-in: pip install mitogen==0.3.54)
        strategy = os.path.join(os.path.dirname(ansible_mitogen.__file__), "plugins", "strategy")
        env = dict(ENV, ANSIBLE_STRATEGY_PLUGINS=strategy, ANSIBLE_STRATEGY="mitogen_linear")
        took, changed = playbook("inventories/lab", "playbooks/site.yml", "-i", mitogen_overlay(),
                                 env=env)
        res["lab_converge_rerun_mitogen_changed"] = changed
        res["lab_converge_rerun_mitogen_s"] = round(took, 1)
        log(f"re-run with mitogen: {took:.1f}s changed={changed}")
    except ImportError:
        res["lab_converge_rerun_mitogen_s"] = None
        log("mitogen not installed; skipping its measurement")
    except RuntimeError as exc:
        res["lab_converge_rerun_mitogen_s"] = None
        res["mitogen_error"] = str(exc)


# ------------------------------------------------------------------ where the time goes ---
# A re-run on a small box is CPU-bound: these counters say whose CPU it was. Containers: the
# modules running in the lab hosts (cgroup accounting, v1 or v2). Controller: ansible-playbook,
# its workers and the docker CLI they start (this process's waited-for children). Engine:
# dockerd, containerd and the shims serving every docker exec.
ENGINE = ("dockerd", "containerd")  # and every containerd-shim*


def containers_cpu_s(container=None):
    if container:
        ids = [sh(["docker", "inspect", "-f", "{{.Id}}", container]).stdout.strip()]
    else:
        ids = sh(["docker", "ps", "-q", "--no-trunc", "--filter", "label=org.webfleet.lab=1"]).stdout.split()
    total, found = 0.0, False
    for cid in ids:
        v1 = f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"
        v2 = f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"
        if os.path.exists(v1):
            with open(v1) as fh:
                total += int(fh.read()) / 1e9
            found = True
        elif os.path.exists(v2):
            with open(v2) as fh:
                total += int(dict(line.split() for line in fh)["usage_usec"]) / 1e6
            found = True
    return total if found else None


def engine_cpu_s():
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm in ENGINE or comm.startswith("containerd-shim"):
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


def busy_cpu_s():
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_counters():
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"containers": containers_cpu_s(), "controller": child.ru_utime + child.ru_stime,
            "engine": engine_cpu_s(), "busy": busy_cpu_s()}


def cpu_split(before, after, wall):
    out = {"wall_s": round(wall, 1)}
    for key in ("containers", "controller", "engine"):
        if before[key] is not None and after[key] is not None:
            out[f"{key}_cpu_s"] = round(after[key] - before[key], 1)
    out["cores_busy_pct"] = round(100 * (after["busy"] - before["busy"]) / (wall * os.cpu_count()), 1)
    return out


def module_cost(runs=20):
    """CPU in one lab container per module run: ansible.builtin.stat (a typical module: Python
    starts and imports module_utils from the AnsiballZ zip) against raw `true` (docker exec
    alone); and the wall time per task, one host, tasks one after another (bench/module_cost.yml,
    each play runs its task `runs` times)."""
    out = {}
    for name in ("stat", "raw"):
        before = containers_cpu_s(WEB["container"])
        took, _ = playbook("inventories/lab", "bench/module_cost.yml", "--tags", name,
                           "-e", f"module_cost_runs={runs}")
        used = containers_cpu_s(WEB["container"])
        if before is not None and used is not None:
            out[f"{name}_container_cpu_ms"] = round(1000 * (used - before) / runs, 1)
        out[f"{name}_wall_ms"] = round(1000 * took / runs, 1)
    return out


def mitogen_overlay():
    """Mitogen only recognises the short connection name (docker, not community.docker.docker):
    an extra inventory source that says so for every lab host."""
    hosts = sh([os.path.join(BIN, "ansible"), "-i", "inventories/lab", "all", "--list-hosts"])
    names = [h.strip() for h in hosts.stdout.splitlines()[1:] if h.strip()]
    path = os.path.join(tempfile.mkdtemp(prefix="webfleet-mitogen-"), "hosts.yml")
    with open(path, "w") as fh:
        fh.write("all:\n  hosts:\n")
        for name in names:
            fh.write(f"    {name}: {{ansible_host: wf-{name}, ansible_connection: docker}}\n")
    return path


# --------------------------------------------------------------------------------- scale ---
def scale_inventory(n, workdir):
    """An inventory like the lab's with n web hosts (half per DC) and one LB per DC."""
    inv = os.path.join(workdir, f"scale{n}")
    shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"),
                    os.path.join(inv, "group_vars"))
    shutil.copy(os.path.join(REPO, "inventories", "lab", "vault-pass.txt"), inv)
    dcs = {"east": (1, 0), "west": (2, 64)}
    lines = ["---", "all:", "  children:", "    lab:", "      children:"]
    web = {"nginx": [], "apache": []}
    for dc, (net, wan) in dcs.items():
        lines += [f"        dc_{dc}:", "          hosts:"]
        for i in range(n // 2):
            name = f"s{n}-{dc}-web{i + 1:02d}"
            web["nginx" if i % 2 == 0 else "apache"].append(name)
            lines.append(f"            {name}: {{ansible_host: wf-{name}, "
                         f"lab_ips: {{wf-lab-{dc}: 10.230.{net}.{100 + i}, "
                         f"wf-lab-wan: 10.230.0.{wan + 100 + i}}}}}")
        lines.append(f"            s{n}-{dc}-lb1: {{ansible_host: wf-s{n}-{dc}-lb1, "
                     f"lab_ips: {{wf-lab-{dc}: 10.230.{net}.21, "
                     f"wf-lab-wan: 10.230.0.{21 + wan}}}}}")
    lines += ["    web:", "      children:"]
    for kind, hosts in web.items():
        lines += [f"        {kind}:", "          hosts:"] + [f"            {h}:" for h in hosts]
    lines += ["    lb:", "      hosts:"] + [f"        s{n}-{dc}-lb1:" for dc in dcs]
    lines += ["    monitoring:", "      hosts: {}"]
    os.makedirs(inv, exist_ok=True)
    with open(os.path.join(inv, "hosts.yml"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return inv


def section_scale(res):
    sh(["scripts/lab.sh", "down"])
    workdir = tempfile.mkdtemp(prefix="webfleet-scale-")
    try:
        for n in SCALE:
            # Each size on its own: one failed converge does not cost the other sizes.
            try:
                inv = scale_inventory(n, workdir)
                playbook(inv, "playbooks/lab.yml", "--tags", "lab_create")
                wait_systemd("wf-s")
                # Converge time grows with the host count on a fixed number of cores (about 70 s
                # per web host on the 2-core bench box): a flat limit cut the 24-host run short.
                took, _ = playbook(inv, "playbooks/site.yml", timeout=600 + 150 * n)
                res[f"scale_{n}_web_s"] = round(took, 1)
                res.pop(f"scale_{n}_error", None)
                log(f"converge with {n} web hosts: {took:.1f}s")
            except RuntimeError as exc:
                res[f"scale_{n}_error"] = str(exc)
                log(f"converge with {n} web hosts failed: {exc}")
            sh(["scripts/lab.sh", "down"])
        if "scale_24_web_s" in res and "scale_6_web_s" in res:
            res["scale_24_vs_6"] = round(res["scale_24_web_s"] / res["scale_6_web_s"], 2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        sh(["scripts/lab.sh", "down"], check=False)


# ------------------------------------------------------------------------- client helper ---
def systemd_container(name, ip, package, *extra):
    """Start a systemd container of the lab's Debian 12 image on the east network, with one
    package from apt; nothing happens if it already exists. extra: more `docker run` options."""
    if sh(["docker", "inspect", name], check=False).returncode == 0:
        return
    sh(["docker", "run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--cgroupns", "host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/tmp",
        "--label", "org.webfleet.lab=1", "--network", "wf-lab-east", "--ip", ip, *extra,
        "webfleet/debian:12", "/sbin/init"])
    time.sleep(3)
    dexec(name, f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"
          " >/dev/null", timeout=600, check=True)


def ensure_client():
    """A bench client container on the lab's east and WAN networks, with wrk and the probe."""
    # Fixed addresses: the lab inventory exempts them from the per-client abuse limits
    # (lab_load_generators) and lets them reach the web servers straight.
    if sh(["docker", "inspect", CLIENT], check=False).returncode != 0:
        systemd_container(CLIENT, CLIENT_IPS[0], "wrk", "--add-host", f"{SHOP}:{LB['ip']}")
        sh(["docker", "network", "connect", "--ip", CLIENT_IPS[1], "wf-lab-wan", CLIENT])
    sh(["docker", "cp", os.path.join(REPO, "bench", "probe.py"), f"{CLIENT}:/usr/local/bin/probe.py"])
    ca = sh(["docker", "exec", WEB["container"], "cat", "/etc/webfleet/tls/ca.crt"]).stdout
    put(CLIENT, "/etc/webfleet-ca.crt", ca)


def wrk_cmd(threads, conns, seconds):
    # Port spelled out: the client image has no /etc/services to look "https" up in.
    return f"wrk -t{threads} -c{conns} -d{seconds}s --latency https://{SHOP}:443/products.json"


def wrk(ip, seconds=10, conns=32):
    out = dexec(CLIENT, f"getent hosts {SHOP} >/dev/null; "
                f"echo '{ip} {SHOP}' > /tmp/hosts && cp /tmp/hosts /etc/hosts && "
                + wrk_cmd(2, conns, seconds), timeout=seconds + 60).stdout
    return wrk_figures(out)


def wrk_pool(ips, seconds=10, conns=32):
    """wrk against several servers at once, the connections split between them: what the LB's
    backends serve without the LB. Each wrk resolves the shop's name to its own server through a
    private mount namespace's /etc/hosts (SNI and Host stay the shop's name)."""
    runs = " ".join(
        f"(echo '{ip} {SHOP}' > /tmp/hosts.{i}; unshare -m sh -c 'mount --bind /tmp/hosts.{i} /etc/hosts"
        f" && exec {wrk_cmd(1, conns // len(ips), seconds)}' > /tmp/wrk.{i}) &"
        for i, ip in enumerate(ips))
    dexec(CLIENT, f"{runs} wait", timeout=seconds + 60, check=True)
    each = [wrk_figures(dexec(CLIENT, f"cat /tmp/wrk.{i}").stdout) for i in range(len(ips))]
    return {"rps": round(sum(r["rps"] for r in each), 2), "p99_ms": max(r["p99_ms"] for r in each),
            "requests": sum(r["requests"] or 0 for r in each), "non_2xx": sum(r["non_2xx"] for r in each),
            "socket_errors": sum(r["socket_errors"] for r in each), "servers": each}


def wrk_figures(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"rps": rps, "p99_ms": round(p99_ms, 2), "requests": int(total.group(1)) if total else None,
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(int(g) for g in sock.groups()) if sock else 0}


def stock_nginx():
    """Debian's nginx as shipped, serving the same file with the same certificate."""
    systemd_container(STOCK, STOCK_IP, "nginx")
    for src, dst in (("/etc/webfleet/tls/east-web1-ecdsa.fullchain.pem", "/etc/nginx/cert.pem"),
                     ("/etc/webfleet/tls/east-web1-ecdsa.key", "/etc/nginx/key.pem")):
        data = sh(["docker", "exec", WEB["container"], "cat", src]).stdout
        put(STOCK, dst, data)
    body = sh(["docker", "exec", WEB["container"], "sh", "-c",
               "cat $(find /var/www -name products.json | head -1)"]).stdout
    put(STOCK, "/var/www/html/products.json", body)
    site = ("server { listen 443 ssl http2 default_server; ssl_certificate /etc/nginx/cert.pem; "
            "ssl_certificate_key /etc/nginx/key.pem; root /var/www/html; }")
    dexec(STOCK, f"echo '{site}' > /etc/nginx/sites-enabled/bench && chmod 644 /var/www/html/products.json"
          " && nginx -t && systemctl reload nginx", check=True)
    return STOCK_IP


def section_http(res):
    ensure_client()
    stock_ip = stock_nginx()
    # The LB spreads requests over its DC's web servers (nginx and Apache in the lab), so the LB is
    # compared with those same servers loaded at once; `direct` (one nginx) is the stock baseline.
    primaries = dexec(LB["container"], "awk '$1 == \"server\" && !/ backup/ {sub(/:.*/, \"\", $3);"
                      " print $3}' /etc/haproxy/haproxy.cfg", check=True).stdout.split()
    targets = {"lb": lambda s: wrk(LB["ip"], s), "pool": lambda s: wrk_pool(primaries, s),
               "direct": lambda s: wrk(WEB["ip"], s), "stock": lambda s: wrk(stock_ip, s)}
    for label, run in targets.items():
        run(3)  # warm-up: session caches, keepalive pools
        res[f"http_{label}"] = run(10)
        log(f"https {label}: {res[f'http_{label}']}")
    res["http_pool"]["addresses"] = primaries
    res["lb_vs_direct_rps"] = round(res["http_lb"]["rps"] / res["http_pool"]["rps"], 2)
    res["lb_vs_one_nginx_rps"] = round(res["http_lb"]["rps"] / res["http_direct"]["rps"], 2)
    res["ours_vs_stock_rps"] = round(res["http_direct"]["rps"] / res["http_stock"]["rps"], 2)


# ----------------------------------------------------------------------------- failover ---
def server_state(lb_container, server):
    """Operational state of a server in every backend of the LB (runtime API, inside the LB)."""
    cmd = ("python3 -c \"import socket;s=socket.socket(socket.AF_UNIX);"
           "s.connect('/run/haproxy/admin.sock');s.sendall(b'show stat\\n');"
           "import sys;d=b''\nwhile True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
           "sys.stdout.write(d.decode())\"")
    out = dexec(lb_container, cmd, timeout=10).stdout
    states = [line.split(",")[17] for line in out.splitlines()
              if len(line.split(",")) > 17 and line.split(",")[1] == server]
    return states


def probe(seconds, target_ip, out_name):
    """Run the load probe in the client for `seconds`; returns a thread and the result path."""
    path = f"/tmp/{out_name}.csv"
    cmd = (f"python3 /usr/local/bin/probe.py --host {SHOP} --ip {target_ip} --seconds {seconds} "
           f"--ca /etc/webfleet-ca.crt --out {path}")
    thread = threading.Thread(target=dexec, args=(CLIENT, cmd), kwargs={"timeout": seconds + 60})
    thread.start()
    return thread, path


def read_probe(path):
    rows = dexec(CLIENT, f"cat {path}").stdout.splitlines()[1:]
    samples = [(float(t), float(ms), ok == "1") for t, ms, ok in (r.split(",") for r in rows)]
    return samples


def detect(lb, server, action, undo):
    start = time.monotonic()
    dexec(WEB["container"], action)
    while time.monotonic() - start < 10:
        states = server_state(lb, server)
        if states and all(s.startswith("DOWN") or s.startswith("MAINT") for s in states):
            took = time.monotonic() - start
            break
        time.sleep(0.02)
    else:
        took = None
    time.sleep(2)
    dexec(WEB["container"], undo)
    return took


def failure_episode(res, kind, action, undo):
    """Probe the LB for 20 s while one web server fails by `action`; record detection and losses."""
    thread, path = probe(20, LB["ip"], kind)
    time.sleep(4)
    res[f"{kind}_detect_s"] = detect(LB["container"], WEB["name"], action, undo)
    thread.join()
    samples = read_probe(path)
    res[f"{kind}_failed_requests"] = sum(1 for s in samples if not s[2])
    res[f"{kind}_requests"] = len(samples)
    res[f"timeline_{kind}"] = samples


def section_failover(res):
    ensure_client()
    failure_episode(res, "crash", "systemctl kill -s KILL nginx", "systemctl start nginx")
    time.sleep(3)
    failure_episode(res, "hang",
                    # [n]: the pattern must not match this sh -c itself (it would stop the shell).
                    "pkill -STOP -f '[n]ginx: worker' ; pkill -STOP -f '[n]ginx: master'",
                    "pkill -CONT -f '[n]ginx'")
    log(f"crash detect {res['crash_detect_s']}s failed={res['crash_failed_requests']}; "
        f"hang detect {res['hang_detect_s']}s failed={res['hang_failed_requests']}")


def section_rolling(res):
    ensure_client()
    thread, path = probe(400, LB["ip"], "rolling")
    time.sleep(2)
    try:
        took, _ = playbook("inventories/lab", "playbooks/rolling_update.yml")
    finally:
        dexec(CLIENT, "pkill -INT -f probe.py")
        thread.join()
    samples = read_probe(path)
    res["rolling_update_s"] = round(took, 1)
    res["rolling_failed_requests"] = sum(1 for s in samples if not s[2])
    res["rolling_requests"] = len(samples)
    res["rolling_worst_latency_ms"] = round(max(s[1] for s in samples), 1) if samples else None
    res["timeline_rolling"] = samples
    log(f"rolling update {took:.0f}s: failed={res['rolling_failed_requests']} "
        f"of {len(samples)}, worst {res['rolling_worst_latency_ms']} ms")


# ------------------------------------------------------------------------------- report ---
WARMUP_S = 1.0


def derive(res):
    """Figures computed from the recorded timelines (also for results merged from earlier runs).
    The probe's first second is its clients' TLS handshakes, not the event being measured: the
    worst latency leaves it out, the percentiles are over the whole run."""
    for key in ("crash_detect_s", "hang_detect_s"):
        if isinstance(res.get(key), float):
            res[key] = round(res[key], 3)
    for name in ("crash", "hang", "rolling"):
        samples = res.get(f"timeline_{name}")
        if not samples:
            continue
        lat = sorted(s[1] for s in samples)
        res[f"{name}_latency_p50_ms"] = round(lat[len(lat) // 2], 1)
        res[f"{name}_latency_p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1)
        res[f"{name}_latency_p999_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.999))], 1)
        after = [s[1] for s in samples if s[0] >= WARMUP_S]
        if after:
            res[f"{name}_worst_latency_ms"] = round(max(after), 1)


def plots(res, stem):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = []
    for key, title in (("timeline_crash", "crash of east-web1 under load"),
                       ("timeline_hang", "hang (SIGSTOP) of east-web1 under load"),
                       ("timeline_rolling", "rolling update under load")):
        samples = res.get(key)
        if not samples:
            continue
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot([s[0] for s in samples], [s[1] for s in samples], ",", alpha=0.6, label="ok")
        bad = [s for s in samples if not s[2]]
        if bad:
            ax.plot([s[0] for s in bad], [s[1] for s in bad], "rx", label="failed")
        ax.set_xlabel("seconds")
        ax.set_ylabel("latency ms")
        ax.set_title(title)
        ax.legend()
        name = f"{stem}-{key}.png"
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, name))
        plt.close(fig)
        images.append((title, name))
    xs = sorted(int(k.split("_")[1]) for k in res if re.fullmatch(r"scale_\d+_web_s", k))
    if xs:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(xs, [res[f"scale_{n}_web_s"] for n in xs], "o-")
        ax.set_xlabel("web hosts")
        ax.set_ylabel("converge s")
        ax.set_title("converge time vs web hosts")
        fig.tight_layout()
        name = f"{stem}-scale.png"
        fig.savefig(os.path.join(RESULTS, name))
        plt.close(fig)
        images.append(("converge time vs hosts", name))
    return images


def write_json(res, path):
    """Figures indented for reading; the timelines (one sample per request, 10^5 of them in a
    rolling update) one per line and rounded to 10 ms / 0.1 ms, which keeps the file small."""
    figures = {k: v for k, v in res.items() if not k.startswith("timeline_")}
    text = json.dumps(figures, indent=1)[:-2]
    for key in sorted(k for k in res if k.startswith("timeline_")):
        rows = ",\n".join(json.dumps([round(t, 2), round(ms, 1), int(ok)]) for t, ms, ok in res[key])
        text += f',\n "{key}": [\n{rows}\n ]'
    with open(path, "w") as fh:
        fh.write(text + "\n}\n")


def commit():
    """The commit measured, with -dirty when the tree has changes: figures belong to code."""
    proc = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    return proc.stdout.strip() or None


def report(res, stem, images):
    runs = res.get("runs", []) + [{"date": res["date"], "sections": res["sections"],
                                   "bench_total_s": res.get("bench_total_s"), "commit": res.get("commit")}]
    lines = [f"# webfleet benchmark {stem}", "", f"Host: {os.uname().nodename}, "
             f"{os.cpu_count()} cores. Runs (UTC start, sections, seconds): "
             + "; ".join(f"{r['date']} {','.join(r['sections'] or [])} {r['bench_total_s']}"
                         f" (commit {r.get('commit') or 'unknown'})" for r in runs) + ".",
             "Load average at each section's start and end: "
             + ", ".join(f"{k} {v}" for k, v in res.get("loadavg", {}).items()) + ".", "",
             "| measure | goal | measured | met |", "| --- | --- | --- | --- |"]
    for key, (op, goal) in GOALS.items():
        value = res.get(key)
        met = "n/a" if value is None else ("yes" if (value <= goal if op == "<=" else value >= goal)
                                           else "NO")
        lines.append(f"| {key} | {op} {goal} | {value if value is not None else 'not measured'} | {met} |")
    cpu, cost = res.get("lab_rerun_cpu"), res.get("module_cost") or {}
    if cpu:
        lines += ["", "## Where the stock re-run's time went", "",
                  f"{cpu['wall_s']} s wall on {os.cpu_count()} cores, {cpu['cores_busy_pct']}% busy. CPU: "
                  f"lab containers {cpu.get('containers_cpu_s', '?')} s (the modules), controller "
                  f"{cpu.get('controller_cpu_s', '?')} s (ansible-playbook, its workers, the docker CLI), "
                  f"Docker engine {cpu.get('engine_cpu_s', '?')} s."]
    if cost:
        lines += ["", f"One module run in a lab container ({WEB['name']}): ansible.builtin.stat "
                  f"{cost.get('stat_container_cpu_ms', '?')} ms of the container's CPU, raw `true` "
                  f"(docker exec alone) {cost.get('raw_container_cpu_ms', '?')} ms; "
                  f"{cost.get('stat_wall_ms', '?')} ms per stat task on one host, one after another "
                  "(the playbook's start-up included)."]
    lines += ["", "## All figures", "", "```json",
              json.dumps({k: v for k, v in res.items() if not k.startswith("timeline")}, indent=1),
              "```", ""]
    for title, name in images:
        lines += [f"### {title}", "", f"![{title}]({name})", ""]
    with open(os.path.join(RESULTS, f"{stem}.md"), "w") as fh:
        fh.write("\n".join(lines))


SECTIONS = {"converge": section_converge, "rerun": section_rerun, "http": section_http, "failover": section_failover,
            "rolling": section_rolling, "scale": section_scale}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="converge,http,failover,rolling,scale")
    parser.add_argument("--merge", action="store_true",
                        help="add these sections to today's results instead of starting afresh")
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    stem = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    sections = args.only.split(",")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    res = {}
    previous = os.path.join(RESULTS, f"{stem}.json")
    if args.merge and os.path.exists(previous):
        with open(previous) as fh:
            res = json.load(fh)
        for name in sections:
            res.pop(f"{name}_error", None)
        res["runs"] = res.get("runs", []) + [{"date": res.get("date"), "sections": res.get("sections"),
                                              "bench_total_s": res.get("bench_total_s"),
                                              "commit": res.get("commit")}]
    res["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    res["commit"] = commit()
    res["sections"] = sections
    start = time.monotonic()
    try:
        for name in sections:
            log(f"section {name}")
            # The box's load when the section starts and ends: a benchmark on a shared 2-core
            # machine says what else was running.
            res.setdefault("loadavg", {})[name] = [round(os.getloadavg()[0], 1)]
            try:
                SECTIONS[name](res)
            except Exception as exc:  # a failed section is reported, the others still run
                res[f"{name}_error"] = str(exc)
                log(f"section {name} failed: {exc}")
            res["loadavg"][name].append(round(os.getloadavg()[0], 1))
    finally:
        res["bench_total_s"] = round(time.monotonic() - start, 1)
        derive(res)
        write_json(res, os.path.join(RESULTS, f"{stem}.json"))
        report(res, stem, plots(res, stem))
        sh(["docker", "rm", "-f", CLIENT, STOCK], check=False)
        log(f"wrote bench/results/{stem}.json and .md in {res['bench_total_s']}s")
    return 1 if any(k.endswith("_error") for k in res) else 0


if __name__ == "__main__":
    sys.exit(main())
