"""The top-level group_vars/ reaches every playbook under playbooks/ with every inventory.

Ansible reads group_vars only beside the inventory or beside the playbook. webfleet keeps
fleet-wide settings in the top-level group_vars/ and links playbooks/group_vars to it, so these
tests pin the three things that design needs."""

import glob
import json
import os
import subprocess

import pytest

from conftest import BIN, REPO

# Only the lab's vault password is in the repository; other inventories keep their secrets as
# inline !vault values, which listing the inventory does not need to decrypt.
LAB_VAULT = "lab@" + os.path.join(REPO, "inventories", "lab", "vault-pass.txt")
INVENTORIES = sorted(d for d in glob.glob(os.path.join(REPO, "inventories", "*"))
                     if os.path.isdir(d))


def test_playbooks_group_vars_is_the_top_level_one():
    link = os.path.join(REPO, "playbooks", "group_vars")
    assert os.path.islink(link)
    assert os.path.realpath(link) == os.path.join(REPO, "group_vars")


def test_every_playbook_sits_directly_in_playbooks():
    # A playbook in a subdirectory would not see playbooks/group_vars.
    nested = glob.glob(os.path.join(REPO, "playbooks", "*", "**", "*.yml"), recursive=True)
    nested = [p for p in nested if "/group_vars/" not in p]
    assert not nested, f"playbooks in subdirectories miss the fleet-wide group_vars: {nested}"


def test_top_level_group_vars_only_holds_all():
    # Playbook group_vars/<group> would beat every inventory's group_vars/<group>; only "all"
    # (fleet-wide defaults, which inventories override in their environment group) is allowed.
    entries = sorted(os.listdir(os.path.join(REPO, "group_vars")))
    assert entries == ["all"], entries


@pytest.mark.parametrize("inventory", INVENTORIES, ids=os.path.basename)
def test_fleet_vars_reach_every_host(inventory):
    out = subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--playbook-dir", os.path.join(REPO, "playbooks"),
         "--list"],
        capture_output=True, text=True, check=True, cwd=REPO,
        env=dict(os.environ, ANSIBLE_VAULT_IDENTITY_LIST=LAB_VAULT)).stdout
    data = json.loads(out)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars, f"{inventory} has no hosts"
    for host, hv in hostvars.items():
        assert hv.get("webfleet_fleet_vars_loaded") is True, f"{host}: fleet-wide vars missing"
        # The environment group beats the fleet-wide default.
        assert hv.get("webfleet_env") == os.path.basename(inventory), host
