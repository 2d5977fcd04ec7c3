"""The project runs the way AWX runs it: the execution environment definition builds a context,
and every job template points at a playbook that exists."""

import os
import subprocess

import yaml

from conftest import BIN, REPO


def test_ansible_builder_create(tmp_path):
    run = subprocess.run(
        [os.path.join(BIN, "ansible-builder"), "create", "-f",
         os.path.join(REPO, "execution-environment.yml"), "-c", str(tmp_path / "context")],
        capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    dockerfile = (tmp_path / "context" / "Dockerfile").read_text()
    assert "ansible-galaxy" in dockerfile or "assemble" in dockerfile
    assert (tmp_path / "context" / "_build" / "requirements.yml").exists()


def test_job_templates_point_at_real_playbooks():
    with open(os.path.join(REPO, "playbooks", "awx_configure.yml")) as fh:
        play = yaml.safe_load(fh)[0]
    templates = play["vars"]["awx_job_templates"]
    names = {t["name"] for t in templates}
    assert {"site", "rolling update", "drift check", "cert renew"} <= names
    for template in templates:
        assert os.path.exists(os.path.join(REPO, template["playbook"])), template["playbook"]
    drift = next(t for t in templates if t["name"] == "drift check")
    assert drift["job_type"] == "check"
    schedules = {s["template"]: s["rrule"] for s in play["vars"]["awx_schedules"]}
    assert "FREQ=DAILY" in schedules["drift check"]
    assert "FREQ=WEEKLY" in schedules["cert renew"]
