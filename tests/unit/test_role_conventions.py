"""Every role has the same shape (docs/CONVENTIONS.md); these checks keep it that way."""

import glob
import os
import re

import pytest
import yaml

from conftest import REPO

ROLES = sorted(os.path.basename(d) for d in glob.glob(os.path.join(REPO, "roles", "*"))
               if os.path.isdir(d))
TOP_KEY = re.compile(r"^([a-z_][a-z0-9_]*):")


def _text(role, *parts):
    """The text of a file in the role, or None when the role has no such file."""
    path = os.path.join(REPO, "roles", role, *parts)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return fh.read()


def _load(role, *parts):
    text = _text(role, *parts)
    return None if text is None else yaml.safe_load(text)


def _defaults(role):
    return _load(role, "defaults", "main.yml") or {}


def _spec_options(role):
    spec = _load(role, "meta", "argument_specs.yml")
    assert spec, f"{role}: meta/argument_specs.yml is missing"
    return spec["argument_specs"]["main"].get("options") or {}


def _all_spec_options(role):
    """Options of every entry point (main, and internal ones such as common's check_sites)."""
    spec = _load(role, "meta", "argument_specs.yml")
    out = {}
    for entry in spec["argument_specs"].values():
        out.update(entry.get("options") or {})
    return out


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_match(role):
    defaults, options = set(_defaults(role)), set(_spec_options(role))
    every = _all_spec_options(role)
    assert defaults - set(every) == set(), f"{role}: defaults missing from argument_specs"
    assert options - defaults == set(), f"{role}: argument_specs options missing from defaults"
    # Another entry point's option with a default must take it from defaults/main.yml: Ansible
    # validates against argument_specs but does not set the default.
    optional = {name for name, spec in every.items() if "default" in spec}
    assert optional - defaults == set(), f"{role}: entry point defaults missing from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_every_option(role):
    for name, spec in _spec_options(role).items():
        assert spec.get("description"), f"{role}: {name} has no description"
        assert spec.get("type"), f"{role}: {name} has no type"


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_equal_role_defaults(role):
    defaults = _defaults(role)
    for name, spec in _all_spec_options(role).items():
        if "default" in spec and isinstance(defaults.get(name), (str, int, bool, list, dict)):
            if isinstance(defaults[name], str) and "{{" in defaults[name]:
                continue
            assert spec["default"] == defaults[name], f"{role}: {name} default differs"


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_are_prefixed(role):
    for name in _defaults(role):
        assert name.startswith(f"{role}_"), f"{role}: {name} lacks the {role}_ prefix"
    for name in _load(role, "vars", "main.yml") or {}:
        assert name.startswith(f"__{role}_"), f"{role}: private var {name} needs __{role}_"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_commented(role):
    lines = (_text(role, "defaults", "main.yml") or "").splitlines()
    commented = {}
    for i, line in enumerate(lines):
        m = TOP_KEY.match(line)
        if not m:
            continue
        ok = False
        for above in reversed(lines[:i]):
            if above.startswith("#"):
                ok = True
                break
            if not above.strip():
                break
            prev = TOP_KEY.match(above)
            if prev:
                ok = commented.get(prev.group(1), False)
                break
        commented[m.group(1)] = ok
        assert ok, f"{role}: default {m.group(1)} has no comment"


@pytest.mark.parametrize("role", ROLES)
def test_templates_say_managed_by_ansible(role):
    for path in glob.glob(os.path.join(REPO, "roles", role, "templates", "**", "*.j2"),
                          recursive=True):
        with open(path) as fh:
            head = "".join(fh.readlines()[:3])
        assert "managed by Ansible" in head, f"{os.path.relpath(path, REPO)}: header missing"


@pytest.mark.parametrize("role", ROLES)
def test_handlers_do_not_restart_without_a_reason(role):
    for block in re.split(r"\n(?=- name:)", _text(role, "handlers", "main.yml") or ""):
        if "state: restarted" in block:
            assert re.search(r"^\s+#", block, re.M), (
                f"{role}: a restarting handler must say why it cannot reload:\n{block}")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "common"])
def test_roles_depend_on_common(role):
    meta = _load(role, "meta", "main.yml") or {}
    deps = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies", [])]
    assert "common" in deps, f"{role}: meta/main.yml must depend on common"


@pytest.mark.parametrize("role", ROLES)
def test_validation_runs_first(role):
    tasks = _load(role, "tasks", "main.yml") or []
    if os.path.exists(os.path.join(REPO, "roles", role, "tasks", "validate.yml")):
        first = tasks[0]
        target = first.get("ansible.builtin.import_tasks") or first.get("ansible.builtin.include_tasks")
        assert target == "validate.yml", f"{role}: validate.yml must be imported first"
