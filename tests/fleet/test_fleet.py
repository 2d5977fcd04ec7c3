"""The whole fleet, the way operators and AWX run it, on the lab.

Order matters (pytest runs these in file order): AWX's engine converges the bare lab, the
idempotent re-run, drift checks, then growing and shrinking the fleet."""

import os
import re
import tempfile
import time

import ansible_runner

from conftest import BIN, ENV, REPO, docker_exec, run

RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook(*args, **kwargs):
    return run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", *args], **kwargs)


def test_site_through_ansible_runner(lab):
    """AWX runs playbooks with ansible-runner and a private data dir: so do we."""
    with tempfile.TemporaryDirectory() as private:
        result = ansible_runner.run(
            private_data_dir=private, project_dir=REPO, playbook="playbooks/site.yml",
            inventory=os.path.join(REPO, "inventories", "lab"),
            envvars={k: ENV[k] for k in ("ANSIBLE_VAULT_IDENTITY_LIST", "ANSIBLE_CONFIG",
                                         "PATH")},
            quiet=True, timeout=1800)
        assert result.status == "successful", result.stdout.read()[-5000:]
        assert result.rc == 0
        assert result.stats["failures"] == {}
        assert set(result.stats["ok"]) >= {"east-web1", "west-lb1", "mon1"}


def test_second_run_changes_nothing(lab):
    proc = playbook("playbooks/site.yml")
    assert proc.returncode == 0
    recap = RECAP.findall(proc.stdout)
    assert len(recap) >= 9
    assert {h: c for h, c, _u, _f in recap if c != "0"} == {}


def test_every_host_is_an_up_target_and_each_vip_is_probed(lab):
    """Prometheus on mon1 scrapes every lab host and probes each DC's VIP the way a customer
    reaches it; everything is UP (asked through its HTTP API)."""
    import json

    hosts = run([os.path.join(BIN, "ansible"), "-i", "inventories/lab", "all", "--list-hosts"])
    names = {h.strip() for h in hosts.stdout.splitlines()[1:] if h.strip()}
    deadline = time.monotonic() + 60
    while True:
        targets = json.loads(_prometheus_targets())["data"]["activeTargets"]
        down = [(t["labels"].get("job"), t["labels"].get("instance"), t.get("lastError"))
                for t in targets if t["health"] != "up"]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert down == []
    node = {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "node"}
    assert node == names
    vips = {t["labels"]["instance"]: t["labels"]["dc"] for t in targets
            if t["labels"]["job"] == "blackbox-vip"}
    assert vips == {"vip-east": "east", "vip-west": "west"}
    # A probe target is UP when blackbox answered; the probe itself must succeed too.
    probes = json.loads(_prometheus("query?query=probe_success"))["data"]["result"]
    failing = [(r["metric"]["job"], r["metric"]["instance"]) for r in probes if r["value"][1] != "1"]
    assert failing == []
    assert {r["metric"]["instance"] for r in probes if r["metric"]["job"] == "blackbox-vip"} == set(vips)
    # Both nginx hosts' exporters authenticate and are scraped: west-web1 runs Debian 13's package,
    # east-web1 (Debian 12) the same build installed from web_exporter_nginx_deb_url.
    assert {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "nginx"} == {
        "east-web1", "west-web1"}


def test_drift_check_clean(lab):
    proc = playbook("playbooks/drift_check.yml", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "No drift" in proc.stdout


def test_drift_check_names_host_and_file(lab):
    target = "/etc/systemd/journald.conf.d/60-webfleet.conf"
    assert docker_exec("wf-east-web2", f"echo '# edited by hand' >> {target}").returncode == 0
    try:
        proc = playbook("playbooks/drift_check.yml", "--check", "--diff")
        assert proc.returncode != 0
        flat = " ".join(proc.stdout.split())
        assert "DRIFT on 1 host(s)" in flat, proc.stdout[-3000:]
        assert f"east-web2: {target}" in flat
    finally:
        assert playbook("playbooks/site.yml", "--limit", "east-web2").returncode == 0


# --------------------------------------------------------------- the inventory is the truth ---
NEW = "east-web3"
NEW_IPS = {"wf-lab-east": "10.230.1.13", "wf-lab-wan": "10.230.0.13"}


def _inventory_with_new_host(tmp_path, retired=False):
    """A copy of the lab inventory with east-web3 (nginx, DC east) added (or retired)."""
    import shutil

    import yaml

    inv = tmp_path / ("retired" if retired else "grown")
    shutil.copytree(os.path.join(REPO, "inventories", "lab"), inv, dirs_exist_ok=True)
    data = yaml.safe_load((inv / "hosts.yml").read_text())
    lab_children = data["all"]["children"]["lab"]["children"]
    lab_children["dc_east"]["hosts"][NEW] = {"ansible_host": f"wf-{NEW}", "lab_ips": NEW_IPS,
                                             "lab_publish": ["127.0.0.1:13443:443"]}
    data["all"]["children"]["web"]["children"]["nginx"]["hosts"][NEW] = None
    if retired:
        data["all"]["children"]["retired"] = {"hosts": {NEW: None}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return str(inv)


def _lb_server(lb, server):
    """The backend row of `server` in `lb`'s runtime API: (status, is_backup) or None."""
    out = docker_exec(lb, "echo 'show stat' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock").stdout
    header = out.splitlines()[0].lstrip("# ").split(",")
    for line in out.splitlines()[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("svname") == server:
            return row["status"], row["bck"] == "1"
    return None


def _prometheus(path="targets"):
    """GET /api/v1/<path> of mon1's Prometheus (TLS, basic auth), from inside mon1."""
    password = run([os.path.join(BIN, "ansible-vault"), "view",
                    "inventories/lab/group_vars/lab/vault.yml"]).stdout
    password = re.search(r"vault_webfleet_metrics_password:\s*\"?([^\"\n]+)", password).group(1)
    out = docker_exec("wf-mon1", "curl -s --cacert /etc/webfleet/tls/ca.crt "
                      f"-u prometheus:{password} 'https://mon1:9090/api/v1/{path}'").stdout
    return out


def _prometheus_targets():
    return _prometheus("targets")


def test_add_then_remove_a_web_host(lab, tmp_path):
    grown = _inventory_with_new_host(tmp_path)
    assert run([os.path.join(BIN, "ansible-playbook"), "-i", grown, "playbooks/lab.yml",
                "--tags", "lab_create"]).returncode == 0
    for _ in range(60):
        if docker_exec("wf-east-web3", "systemctl is-system-running").stdout.strip() in (
                "running", "degraded"):
            break
        time.sleep(1)
    assert run([os.path.join(BIN, "ansible-playbook"), "-i", grown,
                "playbooks/site.yml"]).returncode == 0

    # It serves, through its DC's LB as a primary and through the other DC's LB as a backup.
    health = docker_exec("wf-east-lb1", "curl -s -o /dev/null -w '%{http_code}' --cacert "
                         "/etc/webfleet/tls/ca.crt --resolve east-web3:443:10.230.0.13 "
                         "https://east-web3/healthz").stdout
    assert health == "200"
    for _ in range(20):
        if (_lb_server("wf-east-lb1", NEW) or ("",))[0] == "UP":
            break
        time.sleep(0.5)
    assert _lb_server("wf-east-lb1", NEW) == ("UP", False)
    assert _lb_server("wf-west-lb1", NEW)[1] is True
    # Its firewall lets the LBs and monitoring in; Prometheus scrapes it.
    rules = docker_exec("wf-east-web3", "nft list table inet webfleet").stdout
    for peer in ("10.230.0.21", "10.230.0.61", "10.230.0.31"):
        assert peer in rules, peer
    assert '"instance":"east-web3"' in _prometheus_targets().replace(" ", "")

    retired = _inventory_with_new_host(tmp_path, retired=True)
    proc = run([os.path.join(BIN, "ansible-playbook"), "-i", retired, "playbooks/remove_host.yml"])
    assert proc.returncode == 0
    for lb in ("wf-east-lb1", "wf-east-lb2", "wf-west-lb1", "wf-west-lb2"):
        assert _lb_server(lb, NEW) is None, f"{lb} still has {NEW}"
    assert '"instance":"east-web3"' not in _prometheus_targets().replace(" ", "")
    for peer in ("wf-east-web1", "wf-east-web2", "wf-east-lb1", "wf-west-lb1", "wf-mon1"):
        rules = docker_exec(peer, "nft list table inet webfleet").stdout
        assert "webfleet" in rules and "10.230.0.13" not in rules, peer
    subprocess_rm = run(["docker", "rm", "-f", "wf-east-web3"])
    assert subprocess_rm.returncode == 0
