"""The install skip on converged hosts (plugins/filter/packages.py)."""

import pytest
from ansible.errors import AnsibleFilterError

from packages import webfleet_missing_packages

FACTS = {"packages": {"nginx": [{"version": "1.22.1"}], "ca-certificates": [{"version": "2023"}]}}


def test_only_packages_absent_from_the_facts_are_missing():
    assert webfleet_missing_packages(["nginx", "ca-certificates"], FACTS) == []
    assert webfleet_missing_packages(["nginx", "haproxy"], FACTS) == ["haproxy"]
    assert webfleet_missing_packages("nginx", FACTS) == []


@pytest.mark.parametrize("name", ["nginx=1.22.1-9", "nginx/bookworm-backports", "nginx:amd64", "nginx*"])
def test_pins_and_qualifiers_always_go_to_apt(name):
    assert webfleet_missing_packages([name], FACTS) == [name]


def test_without_package_facts_everything_is_missing():
    assert webfleet_missing_packages(["nginx"], {}) == ["nginx"]
    assert webfleet_missing_packages(["nginx"], None) == ["nginx"]


def test_a_non_list_is_an_error():
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        webfleet_missing_packages({"name": "nginx"}, FACTS)
