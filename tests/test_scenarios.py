"""Every Molecule scenario, as one pytest test each, so `make test` ends with pytest's summary.

Per scenario: destroy, syntax, converge (create + prepare + converge), idempotence, a check-mode
pass over the converged hosts that must neither fail nor report a change, verify (testinfra),
destroy. `molecule check` is not used for the check pass: it destroys and recreates the
hosts first, which would prove nothing about a converged host.

Select scenarios with WEBFLEET_SCENARIOS="base nginx" (the Makefile's SCENARIO=...).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Molecule and the ansible-playbook it calls come from the same virtualenv as this pytest.
BIN = os.path.dirname(sys.executable)
os.environ["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("ANSIBLE_VAULT_IDENTITY_LIST",
                      "lab@" + os.path.join(REPO, "inventories", "lab", "vault-pass.txt"))
os.environ.setdefault("PY_COLORS", "0")
os.environ.setdefault("ANSIBLE_FORCE_COLOR", "false")
ALL = sorted(d for d in os.listdir(os.path.join(REPO, "molecule"))
             if os.path.isfile(os.path.join(REPO, "molecule", d, "molecule.yml")))
SELECTED = os.environ.get("WEBFLEET_SCENARIOS", "").split() or ALL
RECAP = re.compile(r"^\s*(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAILED = re.compile(r"^(?:FAILED|ERROR) .*$", re.M)


def molecule(scenario, *args, capture=False):
    """Run one molecule step, streaming its output to the console (and returning it)."""
    cmd = ["molecule", *args[:1], "-s", scenario, *args[1:]]
    print(f"\n=== {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        sys.stdout.write(line)
    proc.wait()
    print(f"=== {args[0]} {scenario}: rc={proc.returncode} in {time.monotonic() - start:.0f}s",
          flush=True)
    return proc.returncode, ANSI.sub("", "".join(out))


@pytest.mark.parametrize("scenario", SELECTED)
def test_scenario(scenario):
    assert scenario in ALL, f"no scenario {scenario!r}; have {ALL}"
    # A scenario can be held out of the default run with a reason in molecule/<name>/HELD;
    # naming it (make test SCENARIO=<name>) still runs it.
    held = os.path.join(REPO, "molecule", scenario, "HELD")
    if os.path.exists(held) and not os.environ.get("WEBFLEET_SCENARIOS"):
        with open(held) as fh:
            pytest.skip(f"{scenario} held out of the default run: {fh.read().strip()}")
    try:
        for step in ("destroy", "syntax", "converge", "idempotence"):
            rc, out = molecule(scenario, step)
            assert rc == 0, f"{scenario}: molecule {step} failed (rc={rc})"

        rc, out = molecule(scenario, "converge", "--", "--check", "--diff")
        assert rc == 0, f"{scenario}: check mode failed on the converged hosts"
        recap = RECAP.findall(out)
        assert recap, f"{scenario}: no play recap in the check-mode run"
        changed = {host: int(c) for host, _ok, c, _u, _f in recap if int(c)}
        assert not changed, f"{scenario}: check mode reports changes on converged hosts: {changed}"

        rc, out = molecule(scenario, "verify")
        # Name the failing verifier tests in the assertion itself: CI keeps only the end of a log.
        failed = "\n".join(FAILED.findall(out)) or out[-2000:]
        assert rc == 0, f"{scenario}: verify failed\n{failed}"
    finally:
        if os.environ.get("WEBFLEET_KEEP") != "1":
            molecule(scenario, "destroy")
