"""Which of a role's packages are not installed yet, from the package facts.

The common role learns the installed packages once per host per run (package_facts); each role's
install task runs apt only when ``pkgs | webfleet_missing_packages(ansible_facts)`` is not empty.
On a converged host that skips one apt run per role, each of which opens the package cache.

Anything the facts cannot answer for sure counts as missing, so apt runs as before: no package
facts, a version or release pin (``nginx=1.22*``, ``nginx/bookworm-backports``), an architecture
qualifier, a .deb path.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def webfleet_missing_packages(packages, facts):
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, (list, tuple)):
        raise AnsibleFilterError(f"webfleet_missing_packages: expected a list of package names, got {packages!r}")
    installed = (facts or {}).get("packages") or {}
    return [name for name in packages
            if not isinstance(name, str) or any(c in name for c in "=/:*") or name not in installed]


class FilterModule:
    def filters(self):
        return {"webfleet_missing_packages": webfleet_missing_packages}
