"""Fleet tests run against the lab (inventories/lab), brought up from bare containers here."""

import os
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
LAB_VAULT = "lab@" + os.path.join(REPO, "inventories", "lab", "vault-pass.txt")
ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
           ANSIBLE_VAULT_IDENTITY_LIST=LAB_VAULT, ANSIBLE_FORCE_COLOR="false",
           ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))


def run(cmd, timeout=1800, **kwargs):
    """Run a command from the repository root, echo its output, return the CompletedProcess."""
    print(f"\n=== {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=kwargs.pop("env", ENV), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
                          **kwargs)
    print(proc.stdout[-6000:], flush=True)
    print(f"=== rc={proc.returncode} in {time.monotonic() - start:.0f}s", flush=True)
    return proc


def docker_exec(container, command, timeout=60):
    return subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def lab():
    """Bare lab containers (the real lab's names and networks), removed afterwards."""
    if os.environ.get("WEBFLEET_SKIP_FLEET") == "1":
        pytest.skip("WEBFLEET_SKIP_FLEET=1")
    if os.environ.get("WEBFLEET_LAB_REUSE") == "1":
        # The lab as it is (converged by make lab), kept afterwards: for running one test, e.g.
        # WEBFLEET_LAB_REUSE=1 pytest tests/fleet -k add_then_remove.
        yield
        return
    assert run(["scripts/lab.sh", "down"]).returncode == 0
    created = run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab",
                   "playbooks/lab.yml", "--tags", "lab_create"])
    assert created.returncode == 0
    yield
    if os.environ.get("WEBFLEET_KEEP") != "1":
        run(["scripts/lab.sh", "down"])
