"""webfleet_backends: an LB's backends from the inventory (own DC primary, others backup)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "filter"))

from ansible.errors import AnsibleFilterError  # noqa: E402

from fleet import webfleet_backends  # noqa: E402

HOSTVARS = {
    "e-lb1": {"webfleet_dc": "east", "ansible_host": "10.0.1.21"},
    "e-web1": {"webfleet_dc": "east", "ansible_host": "10.0.1.11"},
    "e-web2": {"webfleet_dc": "east", "webfleet_addresses": ["10.0.1.12", "10.0.0.12"],
               "webfleet_backend_address": "10.0.0.12"},
    "w-web1": {"webfleet_dc": "west", "ansible_host": "10.0.2.11"},
    "w-lb1": {"webfleet_dc": "west", "ansible_host": "10.0.2.21"},
}
GROUPS = {"web": ["w-web1", "e-web2", "e-web1"], "lb": ["e-lb1", "w-lb1"]}


def test_own_dc_primary_other_dc_backup_in_stable_order():
    got = webfleet_backends("e-lb1", HOSTVARS, GROUPS)
    assert [(b["name"], b["backup"]) for b in got] == [
        ("e-web1", False), ("e-web2", False), ("w-web1", True)]
    assert got[1]["address"] == "10.0.0.12"  # webfleet_backend_address wins
    assert got[0]["address"] == "10.0.1.11"
    assert got[2]["dc"] == "west"


def test_other_lb_sees_the_mirror_image():
    got = webfleet_backends("w-lb1", HOSTVARS, GROUPS)
    assert [(b["name"], b["backup"]) for b in got] == [
        ("w-web1", False), ("e-web1", True), ("e-web2", True)]


def test_hosts_narrow_the_pool():
    got = webfleet_backends("e-lb1", HOSTVARS, GROUPS, hosts=["w-web1", "e-web1"])
    assert [b["name"] for b in got] == ["e-web1", "w-web1"]


def test_unknown_host_names_the_variable():
    with pytest.raises(AnsibleFilterError,
                       match=r"webfleet_lb_backend_hosts\[1\]: 'nope' is not a host in the inventory"):
        webfleet_backends("e-lb1", HOSTVARS, GROUPS, hosts=["e-web1", "nope"])


def test_hosts_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="webfleet_lb_backend_hosts must be a list"):
        webfleet_backends("e-lb1", HOSTVARS, GROUPS, hosts="e-web1")


def test_missing_dc_is_an_error():
    hv = dict(HOSTVARS, **{"x-web": {"ansible_host": "10.0.9.1"}})
    with pytest.raises(AnsibleFilterError, match="webfleet_dc is not set for x-web"):
        webfleet_backends("e-lb1", hv, {"web": ["x-web"]})
    with pytest.raises(AnsibleFilterError, match="webfleet_dc is not set for lb0"):
        webfleet_backends("lb0", {"lb0": {}}, GROUPS)


def test_unknown_lb_and_empty_pool():
    with pytest.raises(AnsibleFilterError, match="'ghost' is not in the inventory"):
        webfleet_backends("ghost", HOSTVARS, GROUPS)
    with pytest.raises(AnsibleFilterError, match="no web servers for e-lb1"):
        webfleet_backends("e-lb1", HOSTVARS, {"web": []})


def test_bad_backend_address():
    hv = dict(HOSTVARS)
    hv["e-web1"] = {"webfleet_dc": "east", "webfleet_backend_address": "not-an-ip"}
    with pytest.raises(AnsibleFilterError, match="webfleet_backend_address of e-web1"):
        webfleet_backends("e-lb1", hv, GROUPS)


def test_vrrp_rule_needs_no_port():
    """keepalived's VRRP between LBs goes through the base firewall as proto vrrp (no ports)."""
    from fleet import webfleet_firewall_allow
    allow = webfleet_firewall_allow(
        [{"name": "vrrp-between-lbs", "proto": "vrrp", "to": "lb", "from": ["lb"]}],
        "e-lb1", HOSTVARS, GROUPS)
    assert allow == [{"name": "vrrp-between-lbs", "port": [], "proto": "vrrp",
                      "sources": ["10.0.1.21", "10.0.2.21"]}]


def test_retired_web_servers_leave_the_pool():
    from fleet import webfleet_backends

    hostvars = {"lb1": {"webfleet_dc": "east"},
                "w1": {"webfleet_dc": "east", "webfleet_addresses": ["10.0.0.1"]},
                "w2": {"webfleet_dc": "east", "webfleet_addresses": ["10.0.0.2"]}}
    groups = {"web": ["w1", "w2"], "lb": ["lb1"], "retired": ["w2"]}
    assert [b["name"] for b in webfleet_backends("lb1", hostvars, groups)] == ["w1"]
