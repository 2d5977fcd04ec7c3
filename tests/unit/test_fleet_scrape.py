"""webfleet_scrape_targets: Prometheus targets from the inventory, labelled with dc, tier, env."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "filter"))

from ansible.errors import AnsibleFilterError  # noqa: E402

from fleet import webfleet_scrape_targets, webfleet_vip_targets  # noqa: E402

HOSTVARS = {
    "e-web1": {"webfleet_dc": "east", "webfleet_env": "lab"},
    "e-lb1": {"webfleet_dc": "east", "webfleet_env": "lab", "webfleet_scrape_address": "10.0.1.21"},
    "w-web1": {"webfleet_dc": "west", "webfleet_env": "lab"},
    "mon1": {"webfleet_dc": "east", "webfleet_env": "lab"},
    "odd1": {"webfleet_dc": "west", "webfleet_env": "lab", "webfleet_tier": "batch"},
}
GROUPS = {
    "all": ["w-web1", "e-web1", "e-lb1", "mon1", "odd1"],
    "web": ["w-web1", "e-web1"],
    "nginx": ["e-web1"],
    "apache": ["w-web1"],
    "lb": ["e-lb1"],
    "monitoring": ["mon1"],
    "dc_east": ["e-web1", "e-lb1", "mon1"],
}


def test_every_host_once_sorted_with_labels():
    got = webfleet_scrape_targets(HOSTVARS, GROUPS, "all", 9100)
    assert [t["labels"]["instance"] for t in got] == ["e-lb1", "e-web1", "mon1", "odd1", "w-web1"]
    by_host = {t["labels"]["instance"]: t for t in got}
    assert by_host["e-web1"] == {"targets": ["e-web1:9100"], "labels": {
        "instance": "e-web1", "dc": "east", "tier": "web", "env": "lab"}}
    assert by_host["e-lb1"]["labels"]["tier"] == "lb"
    assert by_host["mon1"]["labels"]["tier"] == "monitoring"
    assert by_host["odd1"]["labels"]["tier"] == "batch"  # webfleet_tier wins


def test_scrape_address_overrides_the_host_name():
    got = webfleet_scrape_targets(HOSTVARS, GROUPS, "lb", 8404)
    assert got[0]["targets"] == ["10.0.1.21:8404"]
    assert got[0]["labels"]["instance"] == "e-lb1"


def test_env_argument_wins():
    got = webfleet_scrape_targets(HOSTVARS, GROUPS, "monitoring", 9090, env="staging")
    assert got[0]["labels"]["env"] == "staging"


def test_url_targets_for_probes_and_extra_labels():
    got = webfleet_scrape_targets(HOSTVARS, GROUPS, "web", target="https://{address}/healthz",
                                  labels={"probe": "healthz"})
    assert [t["targets"] for t in got] == [["https://e-web1/healthz"], ["https://w-web1/healthz"]]
    assert got[0]["labels"]["probe"] == "healthz"


def test_optional_tier_group_absent_gives_no_targets():
    groups = {k: v for k, v in GROUPS.items() if k != "lb"}
    assert webfleet_scrape_targets(HOSTVARS, groups, "lb", 8404) == []


@pytest.mark.parametrize("args,message", [
    (("webb", 9100), "group 'webb' is not an inventory group"),
    (("all", 70000), "port 70000 is not a TCP port"),
    (("all", "9100"), "port '9100' is not a TCP port"),
    (("all", None), "needs a port"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        webfleet_scrape_targets(HOSTVARS, GROUPS, *args)


def test_host_without_dc_is_an_error():
    hostvars = dict(HOSTVARS, **{"e-web1": {"webfleet_env": "lab"}})
    with pytest.raises(AnsibleFilterError, match="webfleet_dc is not set for e-web1"):
        webfleet_scrape_targets(hostvars, GROUPS, "web", 9100)


def test_labels_cannot_override_the_fleet_labels():
    with pytest.raises(AnsibleFilterError, match="may not override"):
        webfleet_scrape_targets(HOSTVARS, GROUPS, "web", 9100, labels={"dc": "x"})


def test_retired_hosts_are_not_scraped():
    from fleet import webfleet_scrape_targets as targets

    hostvars = {"a": {"webfleet_dc": "east", "webfleet_env": "lab"},
                "b": {"webfleet_dc": "east", "webfleet_env": "lab"}}
    groups = {"all": ["a", "b"], "web": ["a", "b"], "retired": ["b"]}
    assert [t["labels"]["instance"] for t in targets(hostvars, groups, "web", 9100)] == ["a"]


def test_web_exporters_come_from_the_nginx_and_apache_groups():
    nginx = webfleet_scrape_targets(HOSTVARS, GROUPS, "nginx", 9113)
    apache = webfleet_scrape_targets(HOSTVARS, GROUPS, "apache", 9117)
    assert nginx == [{"targets": ["e-web1:9113"], "labels": {
        "instance": "e-web1", "dc": "east", "tier": "web", "env": "lab"}}]
    assert apache == [{"targets": ["w-web1:9117"], "labels": {
        "instance": "w-web1", "dc": "west", "tier": "web", "env": "lab"}}]


def test_excluded_hosts_are_not_scraped():
    got = webfleet_scrape_targets(HOSTVARS, GROUPS, "web", 9113, exclude=["e-web1"])
    assert [t["labels"]["instance"] for t in got] == ["w-web1"]
    assert webfleet_scrape_targets(HOSTVARS, GROUPS, "nginx", 9113, exclude=["e-web1"]) == []


@pytest.mark.parametrize("exclude, message", [
    ("e-web1", "exclude must be a list"),
    (["e-wbe1"], "exclude: 'e-wbe1' is not a host in the inventory"),
])
def test_bad_exclude_is_named(exclude, message):
    with pytest.raises(AnsibleFilterError, match=message):
        webfleet_scrape_targets(HOSTVARS, GROUPS, "nginx", 9113, exclude=exclude)


def test_port_var_moves_one_host():
    hostvars = {**HOSTVARS, "w-web1": {**HOSTVARS["w-web1"], "web_exporter_nginx_port": "9300"}}
    groups = {**GROUPS, "nginx": ["e-web1", "w-web1"]}
    got = webfleet_scrape_targets(hostvars, groups, "nginx", 9113, port_var="web_exporter_nginx_port")
    assert [t["targets"] for t in got] == [["e-web1:9113"], ["w-web1:9300"]]


def test_bad_port_var_value_names_host_and_variable():
    hostvars = {**HOSTVARS, "e-web1": {**HOSTVARS["e-web1"], "web_exporter_nginx_port": 70000}}
    with pytest.raises(AnsibleFilterError,
                       match="web_exporter_nginx_port of e-web1: 70000 is not a TCP port"):
        webfleet_scrape_targets(hostvars, GROUPS, "nginx", 9113, port_var="web_exporter_nginx_port")


def _vip_inventory(**extra):
    hostvars = {
        "e-lb1": {"webfleet_dc": "east", "webfleet_env": "lab", "webfleet_vip": "10.0.1.100"},
        "e-lb2": {"webfleet_dc": "east", "webfleet_env": "lab", "webfleet_vip": "10.0.1.100"},
        "w-lb1": {"webfleet_dc": "west", "webfleet_env": "lab", "webfleet_vip": "10.0.2.100"},
        "c-lb1": {"webfleet_dc": "central", "webfleet_env": "lab"},
    }
    for host, values in extra.items():
        hostvars[host].update(values)
    return hostvars, {"lb": sorted(hostvars)}


def test_one_vip_target_per_dc_labelled():
    hostvars, groups = _vip_inventory()
    got = webfleet_vip_targets(hostvars, groups, labels={"probe": "vip"})
    assert got == [
        {"targets": ["https://10.0.1.100/healthz"],
         "labels": {"probe": "vip", "instance": "vip-east", "dc": "east", "tier": "lb", "env": "lab"}},
        {"targets": ["https://10.0.2.100/healthz"],
         "labels": {"probe": "vip", "instance": "vip-west", "dc": "west", "tier": "lb", "env": "lab"}},
    ]


def test_vip_targets_none_without_lbs_or_vips():
    assert webfleet_vip_targets({}, {}) == []
    hostvars, groups = _vip_inventory()
    assert webfleet_vip_targets(hostvars, {"lb": ["c-lb1"]}) == []


def test_lbs_of_a_dc_disagreeing_on_the_vip_is_an_error():
    hostvars, groups = _vip_inventory(**{"e-lb2": {"webfleet_vip": "10.0.1.101"}})
    with pytest.raises(AnsibleFilterError, match="DC east disagree.*e-lb1.*e-lb2"):
        webfleet_vip_targets(hostvars, groups)


def test_retired_lb_is_not_a_vip_source():
    hostvars, groups = _vip_inventory(**{"e-lb2": {"webfleet_vip": "10.0.1.101"}})
    groups["retired"] = ["e-lb2"]
    assert len(webfleet_vip_targets(hostvars, groups)) == 2
