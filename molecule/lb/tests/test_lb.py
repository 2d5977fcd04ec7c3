"""lb scenario: HAProxy health checks, multi-DC failover, LB HA, hitless reloads, rolling updates.

Hosts: dc_one = lb-one-web1/2 behind lb-one-lb1/lb2 (VRRP pair, VIP 10.231.40.100);
dc_two = lb-two-web1/2 behind lb-two-lb1, which also runs the bounded load generator
(tests/wf_load.py) against dc_one's LBs over the scenario network.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time

import pytest

from webfleet_testlib import ansible_playbook, can_connect, host

LB1, LB2, LBT = "lb-one-lb1", "lb-one-lb2", "lb-two-lb1"
ONE = ["lb-one-web1", "lb-one-web2"]
TWO = ["lb-two-web1", "lb-two-web2"]
WEBS = ONE + TWO
IP = {"lb-one-lb1": "10.231.40.21", "lb-one-lb2": "10.231.40.22", "lb-two-lb1": "10.231.40.61"}
VIP = "10.231.40.100"
CLIENT = LBT
NAME = "www.webfleet.test"
SOCK = "/run/haproxy/admin.sock"
PASSWORD = "molecule-stats-secret-7Qx"
HSTS = re.compile(r"^strict-transport-security: max-age=63072000; includeSubDomains", re.M | re.I)
HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO_ROLES = os.path.join(HERE, "..", "roles")
RESULTS = []


def report(line):
    """Measurements end up in the pytest output (-s) and in the ephemeral directory."""
    print(f"\nMEASURED {line}", flush=True)
    RESULTS.append(line)
    path = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), "lb-measured.txt")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def runtime(lb, command):
    return host(lb).run(f"echo '{command}' | socat stdio {SOCK}").stdout


def stat(lb):
    """{server: (status, is_backup)} of be_web from the runtime API."""
    out = {}
    for line in runtime(lb, "show stat").splitlines():
        f = line.split(",")
        if len(f) > 20 and f[0] == "be_web" and f[1] not in ("BACKEND", "FRONTEND"):
            out[f[1]] = (f[17], f[20] == "1")
    return out


def wait_status(lb, server, want, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if stat(lb).get(server, ("?",))[0] == want:
            return True
        time.sleep(0.2)
    return False


def web(name, action):
    """systemctl on a stand-in web server; returns the epoch time just before the action."""
    r = host(name).run(f"date +%s.%N; systemctl {action} nginx")
    assert r.rc == 0, r.stderr
    return float(r.stdout.split()[0])


def watch_down(lb, server, seconds):
    """Start a poller in the LB: prints the epoch time at which the server first reads DOWN."""
    script = (f"end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do "
              f"s=$(echo 'show stat' | socat stdio {SOCK} | awk -F, '$1==\"be_web\" && $2==\"{server}\" {{print $18}}'); "
              f"case \"$s\" in DOWN*|MAINT*) date +%s.%N; exit 0;; esac; sleep 0.02; done; exit 1")
    return subprocess.Popen(["docker", "exec", lb, "bash", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class Load:
    """Bounded load from the client container (count, seconds and a stop file)."""

    def __init__(self, ip, seconds=20, threads=4, rate=25, name=NAME, new_conn=False,
                 max_requests=20000):
        host(CLIENT).run("rm -f /tmp/wf_load.stop")
        self.proc = subprocess.Popen(
            ["docker", "exec", CLIENT, "python3", "/usr/local/bin/wf_load.py", "--ip", ip, "--name", name,
             "--seconds", str(seconds), "--threads", str(threads), "--rate", str(rate),
             "--stop-file", "/tmp/wf_load.stop", "--max-requests", str(max_requests)]
            + (["--new-conn"] if new_conn else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)

    def stop(self):
        host(CLIENT).run("touch /tmp/wf_load.stop")
        return self.result()

    def result(self):
        out, err = self.proc.communicate(timeout=400)
        assert self.proc.returncode == 0, err
        return json.loads(out)


def served_by(res, since=0):
    counts = {}
    for sec, by in res["served"].items():
        if int(sec) >= since:
            for name, n in by.items():
                counts[name] = counts.get(name, 0) + n
    return counts


@pytest.fixture(scope="module", autouse=True)
def load_script():
    # /tmp is a tmpfs in the containers (docker cp cannot write there): stream the file in.
    with open(os.path.join(HERE, "wf_load.py"), encoding="utf-8") as fh:
        subprocess.run(["docker", "exec", "-i", CLIENT, "sh", "-c",
                        "cat > /usr/local/bin/wf_load.py"], stdin=fh, check=True)
    # Start from a healthy fleet (a previous verify run may have stopped half-way).
    for server in WEBS:
        host(server).run("systemctl kill -s SIGCONT nginx; systemctl start nginx")
    for lb in (LB1, LB2, LBT):
        host(lb).run("systemctl start haproxy keepalived")
        for server in WEBS:
            runtime(lb, f"set server be_web/{server} state ready")
    for lb in (LB1, LB2, LBT):
        for server in WEBS:
            assert wait_status(lb, server, "UP", 60), f"{lb}: {server} not UP: {stat(lb)}"


def curl(h, url, *args):
    return h.run(f"curl -sS --cacert /etc/webfleet/tls/ca.crt --resolve {NAME}:443:127.0.0.1 "
                 f"--resolve {NAME}:8404:127.0.0.1 {' '.join(args)} {url}")


# --- configuration ------------------------------------------------------------------------------

def test_backends_from_inventory():
    assert stat(LB1) == {"lb-one-web1": ("UP", False), "lb-one-web2": ("UP", False),
                         "lb-two-web1": ("UP", True), "lb-two-web2": ("UP", True)}
    assert stat(LBT) == {"lb-two-web1": ("UP", False), "lb-two-web2": ("UP", False),
                         "lb-one-web1": ("UP", True), "lb-one-web2": ("UP", True)}


def test_config_checks_and_backend_tls():
    lb = host(LB1)
    cfg = lb.file("/etc/haproxy/haproxy.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "haproxy", 0o640)
    text = cfg.content_string
    assert "managed by Ansible (webfleet haproxy role)" in text
    assert lb.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    for needle in ("option httpchk", "http-check expect status 200", "retry-on conn-failure",
                   "option redispatch 1", "observe layer7", "on-error mark-down", "fastinter",
                   "verify required ca-file /etc/webfleet/tls/ca.crt", "check-sni lb-one-web1",
                   "http-reuse safe", "ssl-default-bind-options prefer-client-ciphers "
                   "ssl-min-ver TLSv1.2 no-tls-tickets"):
        assert needle in text, needle
    assert PASSWORD not in text
    # bcrypt at haproxy_stats_bcrypt_rounds' default (5): HAProxy checks it on every request.
    assert re.search(r"user admin password \$2b\$05\$", text)


def test_listeners_and_runtime_api_local_only():
    lb = host(LB1)
    # Every TCP listener of the LB (Docker's embedded DNS on 127.0.0.11 aside).
    ports = set(re.findall(r"(?<!127\.0\.0\.11):(\d+)\s", lb.run("ss -Hltn").stdout))
    assert ports == {"80", "443", "8404"}, ports
    sock = lb.file(SOCK)
    assert sock.is_socket and sock.mode == 0o660
    assert (sock.user, sock.group) == ("root", "haproxy")
    assert "Name: HAProxy" in runtime(LB1, "show info")
    # Nothing but the public ports answers over the network.
    assert can_connect(host(CLIENT), IP[LB1], 443)
    for port in (9999, 1936, 8080):
        assert not can_connect(host(CLIENT), IP[LB1], port)


# Each haproxy process: its user, its effective capabilities, and how many of the mounts it can
# see sit at "/". Its /proc/<pid>/root cannot be read here (that takes CAP_SYS_PTRACE), but its
# mountinfo lists only the mounts under its own root: a chrooted process cannot see the
# container's root filesystem.
HAPROXY_PROCS = ("for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = haproxy ] && "
                 "echo \"$(stat -c %U $d) $(awk '/^CapEff/ {print $2}' $d/status) "
                 "$(awk '$5 == \"/\"' $d/mountinfo | wc -l)\"; done")


def test_worker_drops_privileges_into_chroot():
    # LB-06: the master stays root (it re-binds on reload); the workers (a reload's old one may
    # still be finishing) run as haproxy, without capabilities, in the /var/lib/haproxy chroot.
    out = host(LB1).run(HAPROXY_PROCS).stdout
    procs = {tuple(line.split()) for line in out.splitlines() if line.strip()}
    masters = [p for p in procs if p[0] == "root"]
    assert len(masters) == 1 and masters[0][2] == "1", procs
    assert {p for p in procs if p[0] != "root"} == {("haproxy", "0000000000000000", "0")}, procs
    assert "chroot /var/lib/haproxy" in host(LB1).file("/etc/haproxy/haproxy.cfg").content_string


# A client that starts a request and never ends its headers (slowloris).
SLOW_CLIENT = f"""
import socket, time
s = socket.create_connection(("{IP[LB1]}", 80), 5)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: {NAME}\\r\\n")
s.settimeout(60)
start = time.time()
answer = s.recv(200)
print(round(time.time() - start, 1), answer.split(b"\\r\\n")[0].decode())
"""


def test_unfinished_request_headers_time_out():
    # LB-07: timeout http-request (haproxy_timeout_http_request_ms, 10 s here) ends it with a 408.
    script = base64.b64encode(SLOW_CLIENT.encode()).decode()
    waited, line = host(CLIENT).run(f"echo {script} | base64 -d | python3").stdout.split(" ", 1)
    assert line.startswith("HTTP/1.1 408 "), line
    # It waited for the timeout rather than refusing at once; the 60 s socket limit was not hit.
    assert 9 <= float(waited) < 60, waited


def test_tls_profile_redirect_hsts_request_id():
    lb = host(LB1)
    s_client = (f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} "
                f"-CAfile /etc/webfleet/tls/ca.crt </dev/null 2>&1")
    assert "Verify return code: 0 (ok)" in lb.run(s_client).stdout
    assert "ALPN protocol: h2" in lb.run(s_client.replace("</dev", "-alpn h2,http/1.1 </dev")).stdout
    assert lb.run(s_client.replace("-connect", "-tls1_1 -connect")).stdout.count("Cipher is (NONE)") \
        or lb.run(s_client.replace("-connect", "-tls1_1 -connect")).rc != 0
    assert lb.run(f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} -tls1_2 "
                  f"-curves secp521r1 </dev/null").rc != 0
    assert "TLS session ticket:" not in lb.run(s_client.replace("-connect", "-tls1_2 -connect")).stdout
    r = lb.run(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -H 'Host: {NAME}' "
               f"http://127.0.0.1/x")
    assert r.stdout == f"308 https://{NAME}/x"
    head = curl(lb, f"https://{NAME}/", "-sI").stdout
    assert HSTS.search(head), head
    rid = re.search(r"^x-request-id: (\S+)", head, re.M | re.I).group(1)
    time.sleep(1)
    assert rid in lb.run("journalctl -t haproxy --since -1min --no-pager").stdout, rid


def test_methods_limited_and_backend_software_hidden():
    web1 = host(ONE[0])
    # The web server names itself; the LB must not pass that on.
    direct = web1.run(f"curl -sSI --cacert /etc/webfleet/tls/ca.crt --resolve {ONE[0]}:443:127.0.0.1 "
                      f"https://{ONE[0]}/").stdout
    assert re.search(r"^server: nginx", direct, re.M | re.I), direct
    head = curl(host(LB1), f"https://{NAME}/", "-sI").stdout
    assert head.startswith("HTTP/2 200") and not re.search(r"^server:", head, re.M | re.I), head
    # nginx would answer 405 to a PUT as well, with its own page: this one is HAProxy's.
    r = curl(host(LB1), f"https://{NAME}/", "-X PUT -d x -w '\n%{http_code}'")
    assert r.stdout.endswith("\n405") and "405 Method Not Allowed" in r.stdout, r.stdout
    # HAProxy's own answer is an HTTPS response like any other: it carries HSTS (TLS-06).
    head = curl(host(LB1), f"https://{NAME}/", "-X PUT -d x -sD - -o /dev/null").stdout
    assert head.startswith("HTTP/2 405") and HSTS.search(head), head
    # A 405 names the methods that are allowed (RFC 9110).
    assert re.search(r"^allow: GET, HEAD, POST\r?$", head, re.M | re.I), head


def test_stats_and_metrics_behind_auth():
    lb = host(LB1)
    code = "-o /dev/null -w '%{http_code}'"
    assert curl(lb, f"https://{NAME}:8404/stats", code).stdout == "401"
    # The challenge too carries HSTS; the page names no HAProxy version (AUTH-03).
    assert HSTS.search(curl(lb, f"https://{NAME}:8404/stats", "-sD - -o /dev/null").stdout)
    page = curl(lb, f"https://{NAME}:8404/stats", f"-u admin:{PASSWORD}").stdout
    assert "Statistics Report" in page and not re.search(r"version \d", page, re.I), page[:2000]
    assert curl(lb, f"https://{NAME}:8404/stats", code, "-u admin:wrong-password-1").stdout == "401"
    assert curl(lb, f"https://{NAME}:8404/stats", code, f"-u admin:{PASSWORD}").stdout == "200"
    assert curl(lb, f"https://{NAME}:8404/metrics", code).stdout == "401"
    metrics = curl(lb, f"https://{NAME}:8404/metrics", f"-u admin:{PASSWORD}").stdout
    assert "haproxy_process_" in metrics and "haproxy_server_status" in metrics


# --- failures under load -----------------------------------------------------------------------

# A crashed nginx refuses connections at once; a hung one (SIGSTOP) accepts and never answers, so
# only the health check's timeout notices it: hence the looser bound.
@pytest.mark.parametrize("victim, failure, action, undo, bound", [
    ("lb-one-web1", "crash", "kill -s SIGKILL", "restart", 1.0),
    ("lb-one-web2", "hang", "kill -s SIGSTOP", "kill -s SIGCONT", 3.0),
], ids=["crash", "hang"])
def test_web_server_failure_under_load(victim, failure, action, undo, bound):
    load = Load(IP[LB1], seconds=20)
    time.sleep(4)
    poller = watch_down(LB1, victim, 10)
    try:
        t_fail = web(victim, action)
        out, _ = poller.communicate(timeout=30)
        res = load.result()
    finally:
        web(victim, undo)
    assert poller.returncode == 0, f"{victim} never read DOWN: {stat(LB1)}"
    detect = float(out.split()[-1]) - t_fail
    report(f"{failure} detection ({action.split()[-1]} nginx): {detect * 1000:.0f} ms; "
           f"load {res['total']} requests, {res['failed']} failed, p99 {res['p99_ms']} ms, "
           f"max {res['max_ms']} ms")
    assert detect < bound
    assert res["failed"] == 0, res["errors"]
    assert res["total"] > 200
    assert wait_status(LB1, victim, "UP")


def test_dc_outage_fails_over_to_other_dc_and_back():
    load = Load(IP[LB1], seconds=24)
    time.sleep(3)
    t_out = time.time()
    try:
        for name in ONE:
            web(name, "stop")
        for name in ONE:
            assert wait_status(LB1, name, "DOWN", 10)
        detected = time.time() - t_out
        time.sleep(6)
    finally:
        t_back = time.time()
        for name in ONE:
            web(name, "start")
    for name in ONE:
        assert wait_status(LB1, name, "UP", 20)
    up_after = time.time() - t_back
    res = load.result()
    first, last = int(t_out + detected - res["start"]) + 1, int(t_back - res["start"]) - 1
    during = served_by({"served": {k: v for k, v in res["served"].items()
                                   if first <= int(k) <= last}})
    after = served_by(res, since=int(t_back - res["start"] + up_after + 1))
    report(f"DC outage: both dc_one web servers DOWN in {detected:.2f} s (observed), back UP "
           f"{up_after:.2f} s after start; load {res['total']} requests, {res['failed']} failed; "
           f"served during outage {during}, after return {after}")
    assert res["failed"] == 0, res["errors"]
    assert set(during) == set(TWO), during  # every backup serves (option allbackups)
    assert after and set(after) <= set(ONE), after


def test_hitless_reload_under_load():
    lb = host(LB1)
    before = lb.run("echo 'show proc' | socat stdio /run/haproxy-master.sock").stdout
    # A new TLS connection per request: any connection refused or dropped during the listener
    # hand-over is a failure (idle keep-alive connections are closed by the old workers, which
    # HTTP clients retry by design, so they would not prove anything).
    load = Load(IP[LB1], seconds=15, threads=4, rate=20, new_conn=True)
    for _ in range(3):
        time.sleep(3)
        assert lb.run("systemctl reload haproxy").rc == 0
    res = load.result()
    after = lb.run("echo 'show proc' | socat stdio /run/haproxy-master.sock").stdout
    report(f"3 reloads under load (new connection per request): {res['total']} requests, "
           f"{res['failed']} failed, "
           f"p99 {res['p99_ms']} ms")
    assert res["failed"] == 0, res["errors"]
    assert before != after
    assert "failed: 0" in after or "[failed: 0]" in after or "failed" not in after


# --- LB high availability (keepalived) ----------------------------------------------------------

def vip_holder():
    for lb in (LB1, LB2):
        if f"inet {VIP}/" in host(lb).run("ip -4 addr show").stdout:
            return lb
    return None


def test_vip_moves_when_active_lb_stops():
    end = time.time() + 20
    while vip_holder() != LB1 and time.time() < end:
        time.sleep(0.5)
    assert vip_holder() == LB1, "the first LB (highest priority) should hold the VIP"
    load = Load(VIP, seconds=20, threads=2, rate=20)
    time.sleep(3)
    t_stop = time.time()
    try:
        host(LB1).run("systemctl stop keepalived haproxy")
        moved = None
        while time.time() < t_stop + 15:
            if vip_holder() == LB2:
                moved = time.time() - t_stop
                break
            time.sleep(0.2)
        res = load.result()
    finally:
        host(LB1).run("systemctl start haproxy keepalived")
    late = served_by(res, since=int(t_stop - res["start"]) + 5)
    report(f"LB failover: VIP moved to {LB2} in {moved if moved is None else round(moved, 2)} s; "
           f"load via VIP {res['total']} requests, {res['failed']} failed "
           f"({res['errors'][:2]}), served after the move {sum(late.values())}")
    assert moved is not None and moved < 10
    assert sum(late.values()) > 20
    end = time.time() + 20
    while vip_holder() != LB1 and time.time() < end:
        time.sleep(0.5)
    assert vip_holder() == LB1, "the VIP returns to the preferred LB"


# --- rolling updates --------------------------------------------------------------------------

def rolling_update(*extra):
    env = {"ANSIBLE_ROLES_PATH": f"{os.environ.get('MOLECULE_PROJECT_DIRECTORY', '')}/roles:"
                                 f"{SCENARIO_ROLES}"}
    return ansible_playbook("playbooks/rolling_update.yml", "-e", "rolling_update_role=lb_standin_web",
                            *extra, env=env)


def page(server):
    return host(server).run("cat /var/www/html/index.html").stdout


def test_rolling_update_under_load():
    load = Load(IP[LB1], seconds=300, threads=4, rate=20, max_requests=40000)
    t0 = time.time()
    run = rolling_update("-e", "lb_standin_web_version=2")
    took = time.time() - t0
    res = load.stop()
    report(f"rolling update of {len(WEBS)} web servers in {took:.0f} s under load: "
           f"{res['total']} requests, {res['failed']} failed, p99 {res['p99_ms']} ms, "
           f"max {res['max_ms']} ms")
    assert run.returncode == 0, run.stdout[-4000:]
    assert res["failed"] == 0, res["errors"]
    for server in WEBS:
        assert "version 2" in page(server)
    for lb in (LB1, LB2, LBT):
        assert all(s == "UP" for s, _ in stat(lb).values()), stat(lb)


def test_rolling_update_stops_at_a_broken_host():
    broken = "lb-one-web2"
    # The broken host never answers /healthz: give up on it after 10 s, not the default 60.
    run = rolling_update("-e", "lb_standin_web_version=3", "-e", "rolling_update_up_timeout=10",
                         "-e", json.dumps({"lb_standin_web_broken_hosts": [broken]}))
    try:
        assert run.returncode != 0
        assert "version 3" in page("lb-one-web1")
        for server in TWO:
            assert "version 2" in page(server), "the run must stop at the broken host"
        for lb in (LB1, LB2, LBT):
            assert stat(lb)[broken][0] == "MAINT", stat(lb)
        codes = host(CLIENT).run(
            f"for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}} ' "
            f"--resolve {NAME}:443:{IP[LB1]} https://{NAME}/; done").stdout.split()
        assert codes == ["200"] * 20
    finally:
        fix = rolling_update("-e", "lb_standin_web_version=3", "--limit", broken)
        assert fix.returncode == 0, fix.stdout[-3000:]
    assert all(s == "UP" for s, _ in stat(LB1).values())


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("extra,message", [
    ('{"haproxy_balance": "roundrobbin"}', "haproxy_balance"),
    ('{"haproxy_check_inter_ms": -5}', "haproxy_check_inter_ms: -5 must be a positive number"),
    ('{"webfleet_lb_backend_hosts": ["lb-one-web1", "ghost-web"]}',
     "webfleet_lb_backend_hosts[1]: 'ghost-web' is not a host in the inventory"),
    ('{"haproxy_backends": [{"name": "ghost", "address": "10.9.9.9"}]}',
     "haproxy_backends[0].name: 'ghost' is not a host in the inventory"),
    ('{"haproxy_tls_ca_file": "/nonexistent/ca.crt"}',
     "the new configuration was rejected and the last known good one stays live"),
])
def test_bad_input_fails_naming_the_variable_and_keeps_serving(extra, message):
    lb = host(LB1)
    before = lb.file("/etc/haproxy/haproxy.cfg").md5sum
    run = ansible_playbook("playbooks/lb.yml", "-e", extra, "--limit", LB1)
    assert run.returncode != 0, run.stdout[-2000:]
    flat = " ".join(run.stdout.split())
    assert message in flat, run.stdout[-3000:]
    assert lb.file("/etc/haproxy/haproxy.cfg").md5sum == before
    assert not lb.run("ls /etc/haproxy/ | grep '~'").stdout
    assert lb.service("haproxy").is_running
    assert curl(lb, f"https://{NAME}/", "-o /dev/null -w '%{http_code}'").stdout == "200"


def test_secret_not_in_verbose_log():
    run = ansible_playbook("playbooks/lb.yml", "-v", "--limit", LB1, "--tags", "haproxy")
    out = run.stdout
    assert run.returncode == 0, out[-3000:]
    assert PASSWORD not in out
    assert re.search(rf"{LB1}\s+: ok=\d+\s+changed=0", out), out[-1500:]
