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

    Molecule's verifier environment already points ANSIBLE_CONFIG, the roles and the plugins at
    the scenario. Returns the CompletedProcess with stdout and stderr merged, for tests that read
    the log: colour is off, so a message is matched as plain text.
    """
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true")
    full_env.update(env or {})
    cmd = ["ansible-playbook", "-i", inventory, os.path.join(REPO, playbook), *args]
    return subprocess.run(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900, check=False)


def can_connect(src, address, port, timeout=3):
    """True when a TCP connection from container `src` to address:port succeeds."""
    cmd = (f"timeout {timeout} python3 -c \"import socket; "
           f"socket.create_connection(('{address}', {port}), {timeout})\"")
    return src.run(cmd).rc == 0


# Mozilla guidelines the TLS endpoints are scanned against: sslyze's bundled 5.7 profile, and 6.0
# (which dropped the DHE suites from "intermediate"), a profile kept beside this file.
SSLYZE_PROFILES = {
    "mozilla-5.7": ["--mozilla_config=intermediate"],
    "mozilla-6.0": ["--custom_tls_config",
                    os.path.join(os.path.dirname(__file__), "mozilla-6.0-intermediate.json")],
}


def sslyze_compliant(target, ca_file, profile):
    """Run sslyze against target ("name:port{ip}") with a profile; returns (ok, output)."""
    import subprocess

    cmd = [os.path.join(REPO, ".venv", "bin", "sslyze"), *SSLYZE_PROFILES[profile],
           "--certinfo_ca_file", ca_file, target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.returncode == 0 and "OK - Compliant" in proc.stdout, out
