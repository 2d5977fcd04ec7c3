"""Every playbook passes --syntax-check with every inventory."""

import glob
import os
import subprocess

import pytest

from conftest import BIN, REPO

PLAYBOOKS = sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml")))
INVENTORIES = sorted(d for d in glob.glob(os.path.join(REPO, "inventories", "*"))
                     if os.path.isdir(d))
LAB_VAULT = "lab@" + os.path.join(REPO, "inventories", "lab", "vault-pass.txt")


@pytest.mark.parametrize("inventory", INVENTORIES, ids=os.path.basename)
@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=os.path.basename)
def test_syntax(playbook, inventory):
    run = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "--syntax-check", "-i", inventory, playbook],
        capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, ANSIBLE_VAULT_IDENTITY_LIST=LAB_VAULT))
    assert run.returncode == 0, run.stdout + run.stderr


def test_site_runs_tiers_in_a_safe_order():
    with open(os.path.join(REPO, "playbooks", "site.yml")) as fh:
        text = fh.read()
    order = [text.find(f"import_playbook: {p}") for p in ("base.yml", "web.yml", "lb.yml",
                                                          "monitoring.yml")]
    present = [i for i in order if i >= 0]
    assert present == sorted(present), "site.yml: base, then web, then lb, then monitoring"
    assert order[0] >= 0, "site.yml must apply the baseline"
