"""requirements.yml (for operators and AWX) must be satisfied by the collections CI really uses:
the ones bundled in the pinned `ansible` wheel."""

import json
import os
import subprocess

import yaml
from ansible.module_utils.compat.version import LooseVersion

from conftest import BIN, REPO


def _installed():
    out = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "list", "--format", "json"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    found = {}
    for _path, collections in json.loads(out).items():
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    return found


def _satisfies(version, spec):
    for clause in spec.split(","):
        clause = clause.strip()
        for op in (">=", "<=", "==", "!=", ">", "<"):
            if clause.startswith(op):
                want = LooseVersion(clause[len(op):])
                have = LooseVersion(version)
                ok = {">=": have >= want, "<=": have <= want, "==": have == want,
                      "!=": have != want, ">": have > want, "<": have < want}[op]
                if not ok:
                    return False
                break
    return True


def test_bundled_collections_satisfy_requirements_yml():
    installed = _installed()
    for path in ("requirements.yml", "collections/requirements.yml"):
        full = os.path.join(REPO, path)
        if not os.path.exists(full):
            continue
        with open(full) as fh:
            wanted = yaml.safe_load(fh)["collections"]
        for entry in wanted:
            assert entry["name"] in installed, f"{path}: {entry['name']} is not bundled"
            assert _satisfies(installed[entry["name"]], entry["version"]), (
                f"{path}: {entry['name']} {installed[entry['name']]} does not satisfy "
                f"{entry['version']}")


def test_python_requirements_are_pinned():
    with open(os.path.join(REPO, "requirements.txt")) as fh:
        lines = [ln.split("#")[0].strip() for ln in fh]
    for line in filter(None, lines):
        assert "==" in line, f"requirements.txt: {line!r} is not pinned with =="
