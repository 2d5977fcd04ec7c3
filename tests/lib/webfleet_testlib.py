"""Helpers shared by the testinfra suites of the Molecule scenarios."""

from __future__ import annotations

import os
import subprocess

import testinfra

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def host(name):
    """A testinfra host for a scenario container, by container name."""
    return testinfra.get_host(f"docker://{name}")


def in_container(h):
    return h.run("systemd-detect-virt -c").stdout.strip() not in ("", "none")


def ansible_playbook(playbook, *args, env=None):
    """Run ansible-playbook against the scenario's own inventory (as Molecule set it up).

    Returns the CompletedProcess with stdout and stderr merged, for tests that read the log.
    """
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    full_env = dict(os.environ)
    full_env.update(env or {})
    cmd = ["ansible-playbook", "-i", inventory, os.path.join(REPO, playbook), *args]
    return subprocess.run(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900, check=False)


def can_connect(src, address, port, timeout=3):
    """True when a TCP connection from container `src` to address:port succeeds."""
    cmd = (f"timeout {timeout} python3 -c \"import socket; "
           f"socket.create_connection(('{address}', {port}), {timeout})\"")
    return src.run(cmd).rc == 0
