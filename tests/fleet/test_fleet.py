"""The whole fleet, the way operators and AWX run it, on the lab.

Order matters (pytest runs these in file order): AWX's engine converges the bare lab, the
idempotent re-run, drift checks, then growing and shrinking the fleet."""

import os
import re
import tempfile

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
