"""The inventory wiring filters (plugins/filter/fleet.py)."""

import pytest
from ansible.errors import AnsibleFilterError

from fleet import webfleet_addresses, webfleet_firewall_allow, webfleet_in_network

HOSTVARS = {
    "web1": {"webfleet_addresses": ["10.0.1.11"], "webfleet_dc": "east"},
    "web2": {"ansible_host": "10.0.2.11", "webfleet_dc": "west"},
    "lb1": {"ansible_facts": {"all_ipv4_addresses": ["10.0.1.21"],
                              "all_ipv6_addresses": ["fe80::1", "fd00::21"]},
            "webfleet_dc": "east"},
    "mon1": {"webfleet_addresses": ["10.0.1.31"], "webfleet_dc": "east"},
    "bare": {"ansible_host": "bare.example.net"},
}
GROUPS = {"all": list(HOSTVARS), "web": ["web1", "web2"], "lb": ["lb1"],
          "monitoring": ["mon1"], "nohost": ["bare"]}
ACCESS = [
    {"name": "web", "port": [80, 443], "to": "web", "from": ["lb", "monitoring"]},
    {"name": "public", "port": 443, "to": "lb", "from": ["any"]},
    {"name": "exporter", "port": 9100, "to": "all", "from": ["monitoring", "192.0.2.0/24"]},
]


def test_addresses_order_of_truth():
    assert webfleet_addresses("web1", HOSTVARS) == ["10.0.1.11"]
    assert webfleet_addresses("web2", HOSTVARS) == ["10.0.2.11"]
    assert webfleet_addresses("lb1", HOSTVARS) == ["10.0.1.21", "fd00::21"]


def test_unknown_address_is_an_error_naming_the_host():
    with pytest.raises(AnsibleFilterError, match="no address known for bare"):
        webfleet_addresses("bare", HOSTVARS)


def test_web_host_allows_lb_and_monitoring_only():
    allow = webfleet_firewall_allow(ACCESS, "web1", HOSTVARS, GROUPS)
    by_name = {a["name"]: a for a in allow}
    assert set(by_name) == {"web", "exporter"}
    assert by_name["web"]["sources"] == ["10.0.1.21", "10.0.1.31", "fd00::21"]
    assert by_name["web"]["port"] == [80, 443]
    assert by_name["exporter"]["sources"] == ["10.0.1.31", "192.0.2.0/24"]


def test_lb_is_public():
    allow = webfleet_firewall_allow(ACCESS, "lb1", HOSTVARS, GROUPS)
    assert {"name": "public", "port": [443], "proto": "tcp", "sources": ["any"]} in allow


def test_missing_tier_group_matches_nothing():
    groups = {k: v for k, v in GROUPS.items() if k != "lb"}
    allow = webfleet_firewall_allow(ACCESS, "web1", HOSTVARS, groups)
    assert [a["sources"] for a in allow if a["name"] == "web"] == [["10.0.1.31"]]


@pytest.mark.parametrize("rule,message", [
    ({"name": "x", "port": 70000, "to": "web", "from": ["lb"]},
     r"webfleet_access\[0\] \(x\).port: 70000 is not a TCP/UDP port"),
    ({"name": "x", "port": 0, "to": "web", "from": ["lb"]}, r"port: 0 is not"),
    ({"name": "x", "port": "80", "to": "web", "from": ["lb"]}, r"port: '80' is not"),
    ({"name": "x", "port": 80, "to": "webb", "from": ["lb"]}, r"to: 'webb' is not an inventory group"),
    ({"name": "x", "port": 80, "to": "web", "from": ["lbb"]}, r"from: 'lbb' is neither"),
    ({"name": "x", "port": 80, "to": "web", "from": []}, r"from must be a non-empty list"),
    ({"name": "x", "port": 80, "proto": "sctp", "to": "web", "from": ["lb"]}, r"proto: 'sctp'"),
    ({"port": 80}, r"must be a dict with at least name"),
])
def test_bad_rules_fail_naming_the_variable(rule, message):
    with pytest.raises(AnsibleFilterError, match=message):
        webfleet_firewall_allow([rule], "web1", HOSTVARS, GROUPS)


def test_output_is_stable():
    one = webfleet_firewall_allow(ACCESS, "web1", HOSTVARS, GROUPS)
    two = webfleet_firewall_allow(list(ACCESS), "web1", HOSTVARS, GROUPS)
    assert one == two


def test_retired_hosts_leave_every_allowlist():
    groups = dict(GROUPS, retired=["lb1"])
    allow = webfleet_firewall_allow(ACCESS, "web1", HOSTVARS, groups)
    assert [a["sources"] for a in allow if a["name"] == "web"] == [["10.0.1.31"]]


def test_fleet_wiring_opens_web_exporter_ports_to_monitoring_only():
    """group_vars/all/wiring.yml: 9113 on nginx hosts, 9117 on Apache hosts, monitoring only."""
    import os

    import yaml

    from conftest import REPO
    with open(os.path.join(REPO, "group_vars", "all", "wiring.yml")) as fh:
        access = yaml.safe_load(fh)["webfleet_access"]
    groups = {**GROUPS, "nginx": ["web1"], "apache": ["web2"]}

    def exporter_rules(host):
        return {(a["name"], tuple(a["port"]), tuple(a["sources"]))
                for a in webfleet_firewall_allow(access, host, HOSTVARS, groups)
                if a["name"] in ("nginx-exporter", "apache-exporter")}

    assert exporter_rules("web1") == {("nginx-exporter", (9113,), ("10.0.1.31",))}
    assert exporter_rules("web2") == {("apache-exporter", (9117,), ("10.0.1.31",))}
    assert exporter_rules("lb1") == set() and exporter_rules("mon1") == set()


def test_in_network_keeps_only_the_addresses_of_the_network():
    addrs = ["10.230.1.22", "10.230.0.22", "fd00::22", "10.230.1.23/24"]
    assert webfleet_in_network(addrs, "10.230.1.100/24") == ["10.230.1.22", "10.230.1.23/24"]
    assert webfleet_in_network(addrs, "fd00::1/64") == ["fd00::22"]
    assert webfleet_in_network([], "10.230.1.100/24") == []


def test_in_network_names_the_variable_of_a_bad_network():
    with pytest.raises(AnsibleFilterError, match="keepalived_vip_prefix: '10.230.1.100/33'"):
        webfleet_in_network(["10.230.1.22"], "10.230.1.100/33", var="keepalived_vip_prefix")
    with pytest.raises(AnsibleFilterError, match="^network: 'east'"):
        webfleet_in_network(["10.230.1.22"], "east")
