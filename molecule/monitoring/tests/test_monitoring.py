"""Monitoring: targets from the inventory, rule unit tests, exporter security, the Alertmanager
cluster, an alert delivered end to end (once) and resolved, and bad input refused."""

import json
import re
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from webfleet_testlib import REPO, ansible_playbook, can_connect, host

MON1, MON2, NODE = "monitoring-mon1", "monitoring-mon2", "monitoring-node"
MONS = (MON1, MON2)
HOSTS = (MON1, MON2, NODE)
USER, PASSWORD = "prometheus", "molecule-metrics-0123"  # molecule.yml (test-only secret)
CA = "/etc/webfleet/tls/ca.crt"
WEBHOOK_LOG = "/var/lib/wf-webhook/requests.jsonl"
# The scenario's timers (molecule.yml) and the rule's `for` (InstanceDown).
SCRAPE, EVALUATION, GROUP_WAIT, GROUP_INTERVAL, FOR = 5, 5, 5, 10, 60
# Alertmanager peers wait peer_timeout (15 s) per position before sending what a peer has not.
PEER_TIMEOUT = 15


def curl(src, url, *opts, auth=(USER, PASSWORD)):
    """(http status, body) of an HTTPS request made inside container `src`."""
    cred = f"-u {shlex.quote(auth[0] + ':' + auth[1])} " if auth else ""
    extra = " ".join(shlex.quote(o) for o in opts)
    out = host(src).run(f"curl -s --max-time 10 --cacert {CA} {cred}{extra} "
                        f"-w '\\n%{{http_code}}' {shlex.quote(url)}").stdout
    body, _, status = out.rpartition("\n")
    return status.strip(), body


def query(mon, promql):
    status, body = curl(mon, f"https://{mon}:9090/api/v1/query", "-G", "--data-urlencode",
                        f"query={promql}")
    assert status == "200", body
    return json.loads(body)["data"]["result"]


def notifications():
    out = host(NODE).run(f"cat {WEBHOOK_LOG} 2>/dev/null").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def carries(record, alertname, instance, status):
    """True when a webhook record carries `alertname` for `instance` with this status."""
    payload = record["payload"]
    return (record["path"] == "/webhook" and isinstance(payload, dict)
            and any(a["labels"].get("alertname") == alertname
                    and a["labels"].get("instance") == instance and a["status"] == status
                    for a in payload.get("alerts", [])))


def instance_down(record, status):
    return carries(record, "InstanceDown", NODE, status)


def wait_for(predicate, timeout, step=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    return None


# --- Targets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mon", MONS)
def test_every_inventory_host_is_an_up_target(mon):
    expected = ({("node", h) for h in HOSTS} | {("prometheus", m) for m in MONS}
                | {("alertmanager", m) for m in MONS})

    def all_up():
        got = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1]
               for r in query(mon, "up")}
        return got if all(got.get(k) == "1" for k in expected) else None

    got = wait_for(all_up, 90, 3)
    assert got, f"not every target is up on {mon}: {query(mon, 'up')}"
    labels = {r["metric"]["instance"]: (r["metric"]["dc"], r["metric"]["tier"], r["metric"]["env"])
              for r in query(mon, 'up{job="node"}')}
    assert labels == {MON1: ("east", "monitoring", "molecule"),
                      MON2: ("west", "monitoring", "molecule"),
                      NODE: ("east", "web", "molecule")}


@pytest.mark.parametrize("mon", MONS)
def test_rules_loaded_and_config_reloaded(mon):
    status, body = curl(mon, f"https://{mon}:9090/api/v1/rules")
    assert status == "200"
    names = {r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    assert {"InstanceDown", "DatacenterAllBackendsDown", "AlertmanagerClusterDegraded"} <= names
    assert query(mon, "prometheus_config_last_reload_successful")[0]["value"][1] == "1"


@pytest.mark.parametrize("mon", MONS)
def test_web_server_probed_through_blackbox(mon):
    def probed():
        got = query(mon, f'probe_success{{job="blackbox-healthz",instance="{NODE}"}}')
        return got if got and got[0]["value"][1] == "1" else None

    got = wait_for(probed, 60, 3)
    assert got, query(mon, "probe_success")
    assert got[0]["metric"]["probe"] == "healthz" and got[0]["metric"]["dc"] == "east"
    expiry = query(mon, f'probe_ssl_earliest_cert_expiry{{instance="{NODE}"}} - time()')
    assert float(expiry[0]["value"][1]) > 21 * 86400, "the test certificate must outlive the alert"
    assert curl(MON1, f"https://{mon}:9115/probe?module=http_healthz&target=x", auth=None)[0] \
        == "401"


# --- Rule unit tests (promtool from Debian 12 and 13) ------------------------------------------------

@pytest.mark.parametrize("mon", MONS)
def test_promtool_unit_tests_for_every_rule(mon):
    h = host(mon)
    h.run("rm -rf /var/tmp/wf && mkdir -p /var/tmp/wf/tests /var/tmp/wf/roles/prometheus/files")
    for src, dest in (("tests/promtool", "/var/tmp/wf/tests/"),
                      ("roles/prometheus/files/rules", "/var/tmp/wf/roles/prometheus/files/")):
        subprocess.run(["docker", "cp", f"{REPO}/{src}", f"{mon}:{dest}"], check=True)
    check = h.run("cd /var/tmp/wf && promtool check rules roles/prometheus/files/rules/*.yml")
    assert check.rc == 0, check.stdout + check.stderr
    run = h.run("cd /var/tmp/wf && promtool test rules tests/promtool/webfleet_test.yml")
    print(f"\n{mon}: {h.run('promtool --version').stdout.splitlines()[0]}: {run.stdout.strip()}")
    assert run.rc == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("mon", MONS)
def test_every_web_config_passes_promtool(mon):
    paths = ("/etc/prometheus/node-exporter/web.yml", "/etc/prometheus/web.yml",
             "/etc/prometheus/alertmanager/web.yml", "/etc/prometheus/blackbox/web.yml")
    if mon == MON2:  # also runs nginx and its exporter
        paths += ("/etc/prometheus/nginx-exporter/web.yml",)
    for path in paths:
        run = host(mon).run(f"promtool check web-config {path}")
        assert run.rc == 0 and "SUCCESS" in run.stdout + run.stderr, (path, run.stdout, run.stderr)


# --- Exporter and UI security ---------------------------------------------------------------------

@pytest.mark.parametrize("url, metric", [
    (f"https://{NODE}:9100/metrics", "node_cpu_seconds_total"),
    (f"https://{MON2}:9113/metrics", "nginx_connections_active"),
], ids=["node_exporter", "nginx_exporter"])
def test_exporter_needs_credentials(url, metric):
    assert curl(MON1, url, auth=None)[0] == "401"
    assert curl(MON1, url, auth=(USER, "wrong-password-123"))[0] == "401"
    status, body = curl(MON1, url)
    assert status == "200" and metric in body


@pytest.mark.parametrize("port", [9090, 9093])
def test_prometheus_and_alertmanager_need_credentials(port):
    assert curl(MON1, f"https://{MON2}:{port}/api/v1/status/buildinfo", auth=None)[0] == "401"


@pytest.mark.parametrize("target,port", [(NODE, 9100), (MON1, 9090), (MON2, 9093), (MON2, 9113)])
def test_plain_http_is_refused(target, port):
    out = host(MON1).run(f"curl -s --max-time 5 -o /dev/null -w '%{{http_code}}' "
                         f"http://{target}:{port}/metrics").stdout
    # Go's TLS server answers plain HTTP with 400 ("Client sent an HTTP request to an HTTPS
    # server") and serves nothing.
    assert out == "400"


# Every Go TLS endpoint of the tier, on both Debian builds (node_exporter 1.5.0 from the tarball,
# Prometheus and Alertmanager from Debian 12 and 13, blackbox and the nginx exporter): each takes
# its web.yml from the common role, and each must refuse what Mozilla intermediate refuses.
TLS_ENDPOINTS = [(NODE, 9100), (MON1, 9090), (MON2, 9090), (MON1, 9093), (MON2, 9093),
                 (MON1, 9115), (MON2, 9113)]


@pytest.mark.parametrize("target,port", TLS_ENDPOINTS)
@pytest.mark.parametrize("args", [
    "-tls1_1 -cipher DEFAULT@SECLEVEL=0",          # TLS 1.1
    "-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA",      # CBC suite
    "-tls1_3 -groups secp521r1",                   # a group Go offers by default
])
def test_tls_endpoints_are_mozilla_intermediate(target, port, args):
    run = host(MON1).run(f"openssl s_client -connect {target}:{port} -servername {target} {args} "
                         f"-CAfile {CA} </dev/null")
    assert run.rc != 0, run.stdout
    ok = host(MON1).run(f"openssl s_client -connect {target}:{port} -servername {target} -tls1_2 "
                        f"-curves X25519:prime256v1 -CAfile {CA} </dev/null")
    assert ok.rc == 0 and "Verify return code: 0 (ok)" in ok.stdout, ok.stdout + ok.stderr
    # OpenSSL 3.0 (Debian 12) says "Server Temp Key", 3.5 (Debian 13) "Peer Temp Key".
    assert re.search(r"(Server|Peer) Temp Key: X25519", ok.stdout), ok.stdout


def test_security_headers():
    out = host(MON1).run(f"curl -s -I --cacert {CA} -u {USER}:{PASSWORD} "
                         f"https://{NODE}:9100/metrics").stdout.lower()
    assert "strict-transport-security: max-age=63072000; includesubdomains" in out
    assert "x-content-type-options: nosniff" in out


def test_exporter_port_only_from_monitoring_hosts():
    assert can_connect(host(MON2), NODE, 9100)
    assert not can_connect(host(NODE), MON1, 9100), "only monitoring hosts may scrape"
    assert not can_connect(host(NODE), MON1, 9090), "Prometheus is for the monitoring hosts"


@pytest.mark.parametrize("name", HOSTS)
def test_node_exporter_is_sandboxed(name):
    h = host(name)
    props = h.run("systemctl show prometheus-node-exporter -p NoNewPrivileges -p ProtectSystem "
                  "-p ProtectHome -p PrivateTmp -p PrivateDevices -p User -p ActiveState").stdout
    for expected in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only",
                     "PrivateTmp=yes", "PrivateDevices=yes", "User=prometheus",
                     "ActiveState=active"):
        assert expected in props, props
    web = h.file("/etc/prometheus/node-exporter/web.yml")
    assert (web.user, web.group, web.mode) == ("root", "prometheus", 0o640)
    assert "$2y$10$" in web.content_string and PASSWORD not in web.content_string
    key = h.file("/etc/prometheus/node-exporter/tls.key")
    assert (key.user, key.group, key.mode) == ("root", "prometheus", 0o640)


def test_textfile_collector():
    h = host(NODE)
    h.run("echo 'webfleet_textfile_probe 42' > /var/lib/prometheus/node-exporter/wf-test.prom")
    try:
        _, body = curl(MON1, f"https://{NODE}:9100/metrics")
        assert "webfleet_textfile_probe 42" in body
    finally:
        h.run("rm -f /var/lib/prometheus/node-exporter/wf-test.prom")


# --- The web server's exporter (nginx on monitoring-mon2, Debian 12) ------------------------------

@pytest.mark.parametrize("mon", MONS)
def test_nginx_exporter_is_an_up_target_with_fleet_labels(mon):
    def up():
        got = query(mon, 'up{job="nginx"}')
        return got if got and all(r["value"][1] == "1" for r in got) else None

    got = wait_for(up, 60, 3)
    assert got, f"nginx exporter not up on {mon}: {query(mon, 'up')}"
    assert [(r["metric"]["instance"], r["metric"]["dc"], r["metric"]["tier"], r["metric"]["env"])
            for r in got] == [(MON2, "west", "monitoring", "molecule")]
    # The exporter reads nginx's stub_status (127.0.0.1 only) and reports nginx up.
    assert [r["value"][1] for r in query(mon, f'nginx_up{{instance="{MON2}"}}')] == ["1"]


def test_nginx_exporter_refuses_ciphers_outside_mozilla_intermediate():
    bad = host(MON1).run(f"openssl s_client -connect {MON2}:9113 -servername {MON2} "
                         f"-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA -CAfile {CA} </dev/null")
    assert bad.rc != 0, bad.stdout


def test_nginx_exporter_on_debian_12_is_debian_13s_build():
    """Debian 12's own exporter (0.11) cannot authenticate; the role installs Debian 13's package
    (web_exporter_nginx_deb_url), checked against its sha256."""
    h = host(MON2)
    assert h.file("/etc/debian_version").content_string.startswith("12")
    version = h.run("dpkg-query -W -f '${Version}' prometheus-nginx-exporter").stdout
    assert version == "1.4.1-1+b5"
    deb = "/var/cache/apt/archives/prometheus-nginx-exporter_1.4.1-1+b5_amd64.deb"
    assert h.run(f"sha256sum {deb}").stdout.split()[0] == (
        "52f790faa9bdf2cbdf3c1b95b3df8b704f4dfded5bdc55545bf27ca0eafc589c")
    props = h.run("systemctl show prometheus-nginx-exporter -p ActiveState -p MainPID").stdout
    assert "ActiveState=active" in props


def _refused_with_wrong_sha256(limit, tags, variable):
    """Run the monitoring playbook on one host with a wrong sha256 in `variable`; it must fail.
    Returns the output on one line."""
    run = ansible_playbook("playbooks/monitoring.yml", "--limit", limit, "--tags", tags,
                           "-e", json.dumps({variable: "0" * 64}))
    assert run.returncode != 0, run.stdout[-3000:]
    return " ".join(run.stdout.split())


def test_wrong_nginx_exporter_deb_sha256_is_refused_naming_the_variable():
    before = host(MON2).run("systemctl show prometheus-nginx-exporter -p MainPID").stdout
    flat = _refused_with_wrong_sha256(MON2, "web_exporter_install", "web_exporter_nginx_deb_sha256")
    assert "web_exporter_nginx_deb_sha256: the package from" in flat, flat[-3000:]
    # The same exporter process still runs the same package.
    assert host(MON2).run("systemctl show prometheus-nginx-exporter -p MainPID").stdout == before
    assert host(MON2).run("dpkg-query -W -f '${Version}' prometheus-nginx-exporter").stdout == "1.4.1-1+b5"


def test_nginx_exporter_port_only_from_monitoring_hosts():
    assert can_connect(host(MON1), MON2, 9113)
    assert not can_connect(host(NODE), MON2, 9113), "only monitoring hosts may scrape"
    web = host(MON2).file("/etc/prometheus/nginx-exporter/web.yml")
    assert (web.user, web.group, web.mode) == ("root", "prometheus", 0o640)
    assert "$2y$10$" in web.content_string and PASSWORD not in web.content_string


# --- node_exporter from a release tarball (monitoring-node) -------------------------------------

RELEASE = "node_exporter-1.5.0.linux-amd64"


def _node_exporter_exe():
    h = host(NODE)
    pid = h.run("systemctl show -p MainPID --value prometheus-node-exporter").stdout.strip()
    assert pid not in ("", "0"), "node_exporter is not running"
    # /proc/<pid>/exe is unreadable without CAP_SYS_PTRACE (another user's process): follow the
    # program the process was started as instead.
    argv0 = h.run(f"tr '\\0' '\\n' < /proc/{pid}/cmdline | head -n 1").stdout.strip()
    return pid, h.run(f"readlink -f {argv0}").stdout.strip()


def test_node_exporter_runs_the_tarball_binary():
    h = host(NODE)
    _, exe = _node_exporter_exe()
    assert exe == f"/opt/node_exporter/{RELEASE}/node_exporter"
    assert not h.package("prometheus-node-exporter").is_installed
    served = host(MON1).run(f"sha256sum /srv/wf-tarball/build/{RELEASE}/node_exporter").stdout.split()[0]
    assert h.run(f"sha256sum {exe}").stdout.split()[0] == served


def test_wrong_tarball_sha256_is_refused_naming_the_variable():
    pid, exe = _node_exporter_exe()
    flat = _refused_with_wrong_sha256(NODE, "node_exporter_install", "node_exporter_tarball_sha256")
    assert "node_exporter_tarball_sha256: the tarball from" in flat, flat[-3000:]
    assert "was not installed" in flat
    # Nothing changed: the same process runs the same release.
    assert _node_exporter_exe() == (pid, exe)


def _web_configs_digest(target):
    """One digest of every exporter web config on the host."""
    return host(target).run("cat /etc/prometheus/*/web.yml /etc/prometheus/web.yml 2>/dev/null "
                            "| sha256sum").stdout


@pytest.mark.parametrize("prefix, tag, bad, named", [
    ("node_exporter", "node_exporter", {"node_exporter_basic_auth_password": "too-Short"},
     "node_exporter_basic_auth_password must be set (at least 12 characters"),
    ("prometheus", "prometheus", {"prometheus_tls_cipher_suites": ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"]},
     "prometheus_tls_cipher_suites must spell ChaCha20 suites with their _SHA256 suffix "
     "(not: TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305)"),
    ("alertmanager", "alertmanager", {"alertmanager_bcrypt_cost": 3}, "alertmanager_bcrypt_cost (3) must be 4-14"),
])
def test_bad_web_config_input_is_refused_naming_the_variable(prefix, tag, bad, named):
    """The shared checks (common role, check_web_config) name the calling role's variable, and
    the refused password never reaches the output; nothing changes on the host."""
    target = NODE if prefix == "node_exporter" else MON1
    before = _web_configs_digest(target)
    run = ansible_playbook("playbooks/monitoring.yml", "--limit", target, "--tags", tag,
                           "-e", json.dumps(bad))
    if run.returncode == 0:
        # Accepted by mistake: put the good configuration back before failing, so that the
        # tests after this one see the scenario as converged.
        ansible_playbook("playbooks/monitoring.yml", "--limit", target, "--tags", tag)
    flat = " ".join(run.stdout.split())
    assert run.returncode != 0, run.stdout[-3000:]
    assert named in flat, run.stdout[-3000:]
    assert "too-Short" not in run.stdout
    assert _web_configs_digest(target) == before


# --- Alertmanager cluster -----------------------------------------------------------------------------

@pytest.mark.parametrize("mon", MONS)
def test_alertmanagers_form_a_cluster(mon):
    def ready():
        status, body = curl(mon, f"https://{mon}:9093/api/v2/status")
        data = json.loads(body) if status == "200" else {}
        cluster = data.get("cluster", {})
        return cluster if cluster.get("status") == "ready" and len(cluster.get("peers", [])) == 2 \
            else None

    cluster = wait_for(ready, 60, 2)
    assert cluster, curl(mon, f"https://{mon}:9093/api/v2/status")
    # Gossip listens on the host's address only, never on every address.
    listeners = host(mon).run("ss -lntuH").stdout
    gossip = [line for line in listeners.splitlines() if ":9094 " in line]
    assert gossip and not any("0.0.0.0:9094" in g or "*:9094" in g for g in gossip), gossip


# --- End to end: stop a service, its alert reaches the webhook (once), then resolves ----------------

def alert_episode(target, service, alertname, instance, alert_for, hold=lambda: True):
    """Stop `service` on `target` until `alertname` for `instance` reaches the webhook (and `hold()`
    is true), start it again and wait for the resolved notification; both within their bounds.

    Returns how many webhook records came before the episode, and the alert as delivered."""
    seen_before = len(notifications())

    def delivered(status):
        return next((r for r in notifications()[seen_before:]
                     if carries(r, alertname, instance, status)), None)

    # Down is seen at the next scrape; the rule fires `for` later, at an evaluation; Alertmanager
    # waits group_wait (and, on the second peer, its peer_timeout slot); plus 15 s of slack.
    bound_firing = SCRAPE + EVALUATION + alert_for + EVALUATION + GROUP_WAIT + PEER_TIMEOUT + 15
    stopped = time.time()
    host(target).run(f"systemctl stop {service}")
    try:
        firing = wait_for(lambda: delivered("firing"), bound_firing + 30)
        held = firing and hold()
    finally:
        started = time.time()
        host(target).run(f"systemctl start {service}")
    assert firing, f"no {alertname} within {bound_firing + 30}s: {notifications()}"
    assert held, f"{alertname}: {hold.__doc__}"
    delay_firing = firing["time"] - stopped
    print(f"\n{alertname} delivered {delay_firing:.1f}s after {service} stopped "
          f"(bound {bound_firing}s = scrape {SCRAPE} + eval {EVALUATION} + for {alert_for} + eval "
          f"{EVALUATION} + group_wait {GROUP_WAIT} + peer slot {PEER_TIMEOUT} + slack 15)")
    assert delay_firing <= bound_firing
    assert firing["authorization"] == "Bearer molecule-webhook-token"
    alert = next(a for a in firing["payload"]["alerts"]
                 if a["labels"]["alertname"] == alertname and a["labels"]["instance"] == instance)
    assert alert["labels"]["severity"] == "warning" and alert["annotations"]["runbook"]
    assert "replica" not in alert["labels"], "the replica label must be dropped for deduplication"

    # Resolved: up again at the next scrape, the rule clears at the next evaluation, Prometheus
    # sends the resolved alert, Alertmanager flushes the group at its group_interval.
    bound_resolved = SCRAPE + EVALUATION + GROUP_INTERVAL + PEER_TIMEOUT + 15
    resolved = wait_for(lambda: delivered("resolved"), bound_resolved + 30)
    assert resolved, f"no resolved {alertname} within {bound_resolved + 30}s"
    delay_resolved = resolved["time"] - started
    print(f"{alertname} resolved {delay_resolved:.1f}s after {service} started "
          f"(bound {bound_resolved}s = scrape {SCRAPE} + eval {EVALUATION} + group_interval "
          f"{GROUP_INTERVAL} + peer slot {PEER_TIMEOUT} + slack 15)")
    assert delay_resolved <= bound_resolved
    return seen_before, alert


def instance_down_delivered_once():
    """node_exporter stops on NODE: InstanceDown (for: 1m) reaches the webhook once, resolves."""
    assert wait_for(lambda: all(query(m, f'up{{job="node",instance="{NODE}"}}')[0]["value"][1] == "1"
                                for m in MONS), 60, 2)

    def both_fire():
        """both Prometheus servers must fire it"""
        return wait_for(lambda: all(query(m, 'ALERTS{alertname="InstanceDown",alertstate="firing",'
                                             f'instance="{NODE}"}}') for m in MONS), 60, 1)

    # A real outage: keep it down until both Prometheus servers fire (and have sent) the alert, so
    # neither re-sends it while the other already reports it resolved.
    seen_before, alert = alert_episode(NODE, "prometheus-node-exporter", "InstanceDown", NODE, FOR,
                                       hold=both_fire)
    assert alert["labels"]["dc"] == "east"

    # Two Prometheus servers sent the alert to two clustered Alertmanagers: the firing alert is
    # delivered once. (At recovery the second Alertmanager may still hold a firing snapshot in its
    # peer-wait slot and send it once more before the final resolved: at-least-once, as upstream
    # documents for HA pairs. The episode must still end resolved.)
    def episode():
        return [r for r in notifications()[seen_before:]
                if instance_down(r, "firing") or instance_down(r, "resolved")]

    assert wait_for(lambda: (time.sleep(PEER_TIMEOUT + GROUP_INTERVAL) or True)
                    and instance_down(episode()[-1], "resolved"), 90, 1), episode()
    records = episode()
    first_resolved = next(i for i, r in enumerate(records) if instance_down(r, "resolved"))
    firing_before = sum(instance_down(r, "firing") for r in records[:first_resolved])
    print(f"notifications for the episode: "
          f"{[('firing' if instance_down(r, 'firing') else 'resolved') for r in records]}")
    assert firing_before == 1, records


def web_server_down_delivered():
    """nginx stops on MON2: its exporter reports nginx_up 0 and WebServerStatusUnreachable
    (for: 2m, roles/prometheus/files/rules/webfleet-services.yml) reaches the webhook, then
    resolves."""
    nginx_up = f'nginx_up{{instance="{MON2}"}}'
    assert wait_for(lambda: all(query(m, nginx_up) and query(m, nginx_up)[0]["value"][1] == "1"
                                for m in MONS), 60, 2)
    _, alert = alert_episode(MON2, "nginx", "WebServerStatusUnreachable", MON2, 120)
    assert alert["labels"]["dc"] == "west"


def test_two_outages_at_once_each_alert_delivered_then_resolved():
    """The two outages overlap, as they may in production (and the waits, mostly `for`, overlap
    too): each alert is in its own group and must arrive and resolve within its own bound."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        web = pool.submit(web_server_down_delivered)
        try:
            instance_down_delivered_once()
        finally:
            web.result()


# --- Bad input is refused; the running configuration stays ---------------------------------------------

def _fingerprint(mon):
    h = host(mon)
    return h.run("cd /etc/prometheus && cat prometheus.yml rules/*.yml alertmanager.yml "
                 "| sha256sum").stdout


def test_malformed_rule_is_refused_and_old_config_keeps_running():
    before = _fingerprint(MON1)
    reloaded = query(MON1, "prometheus_config_last_reload_success_timestamp_seconds")[0]["value"][1]
    extra = {"prometheus_rules_extra": [{"name": "broken", "rules": [
        {"alert": "Broken", "expr": "up ==== 0", "labels": {"severity": "warning"}}]}]}
    run = ansible_playbook("playbooks/monitoring.yml", "--limit", MON1, "--tags", "prometheus",
                           "-e", json.dumps(extra))
    flat = " ".join(run.stdout.split())
    assert run.returncode != 0, run.stdout[-3000:]
    assert "The Prometheus configuration was not put live" in flat, run.stdout[-3000:]
    assert "Stage the extra rule groups" in flat
    assert _fingerprint(MON1) == before
    assert not host(MON1).file("/etc/prometheus/rules/extra.yml").exists
    assert host(MON1).service("prometheus").is_running
    assert query(MON1, "prometheus_config_last_reload_successful")[0]["value"][1] == "1"
    assert query(MON1, "prometheus_config_last_reload_success_timestamp_seconds")[0]["value"][1] \
        == reloaded


def test_route_to_undefined_receiver_is_refused_and_old_config_keeps_running():
    before = _fingerprint(MON1)
    extra = {"alertmanager_routes": [{"matchers": ['severity="page"'], "receiver": "nope"}]}
    run = ansible_playbook("playbooks/monitoring.yml", "--limit", MON1, "--tags", "alertmanager",
                           "-e", json.dumps(extra))
    flat = " ".join(run.stdout.split())
    assert run.returncode != 0, run.stdout[-3000:]
    assert "failed `amtool check-config`" in flat and "undefined receiver" in flat, \
        run.stdout[-3000:]
    assert _fingerprint(MON1) == before
    assert host(MON1).service("prometheus-alertmanager").is_running
    status, body = curl(MON1, f"https://{MON1}:9093/api/v2/status")
    assert status == "200" and "nope" not in json.loads(body)["config"]["original"]
    # The secrets in the staged file never reached the log.
    assert "molecule-webhook-token" not in run.stdout
