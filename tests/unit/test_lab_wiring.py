"""The lab's wiring as Ansible renders it (debug runs on the controller, no container needed):
the benchmark's load generator is exempt from the per-client limits and may reach the web
servers, and Prometheus probes each DC's VIP."""

import json
import os
import subprocess

import pytest

from conftest import BIN, REPO

LAB_VAULT = "lab@" + os.path.join(REPO, "inventories", "lab", "vault-pass.txt")
GENERATORS = ["10.230.1.240/32", "10.230.0.240/32"]


def rendered(host, var):
    """The variable as a play on `host` would see it: ad-hoc debug output is
    `host | SUCCESS => {json}`."""
    out = subprocess.run(
        [os.path.join(BIN, "ansible"), "-i", "inventories/lab", host, "-m", "ansible.builtin.debug",
         "-a", f"var={var}"],
        capture_output=True, text=True, check=True, cwd=REPO,
        env=dict(os.environ, ANSIBLE_VAULT_IDENTITY_LIST=LAB_VAULT, ANSIBLE_NOCOLOR="1",
                 ANSIBLE_DEPRECATION_WARNINGS="false")).stdout
    return json.loads(out[out.index("=>") + 2:])[var]


def test_load_generator_is_exempt_from_the_lb_limits():
    assert rendered("east-lb1", "haproxy_limit_exempt") == GENERATORS


@pytest.mark.parametrize("host", ["east-web1", "west-web1"])
def test_load_generator_is_exempt_from_nginx_limits(host):
    exempt = rendered(host, "nginx_limit_exempt")
    assert set(GENERATORS) <= set(exempt) and "127.0.0.1/32" in exempt


@pytest.mark.parametrize("host", ["east-web1", "east-web2", "west-web2"])
def test_load_generator_reaches_the_web_servers_only(host):
    rules = {r["name"]: r for r in rendered(host, "base_firewall_allow")}
    assert set(GENERATORS) <= set(rules["lab-load-generator"]["sources"])
    assert rules["lab-load-generator"]["port"] == [80, 443]


def test_load_generator_has_no_rule_on_monitoring():
    rules = {r["name"] for r in rendered("mon1", "base_firewall_allow")}
    assert "lab-load-generator" not in rules


def test_prometheus_probes_each_vip():
    jobs = {j["job_name"]: j for j in rendered("mon1", "prometheus_scrape_jobs")}
    vip = jobs["blackbox-vip"]
    assert vip["params"] == {"module": ["http_public"]}
    assert [c["targets"] for c in vip["static_configs"]] == [["https://10.230.1.100/healthz"],
                                                             ["https://10.230.2.100/healthz"]]
    assert [c["labels"]["instance"] for c in vip["static_configs"]] == ["vip-east", "vip-west"]


def test_prometheus_scrapes_every_nginx_exporter():
    """Debian 12's nginx hosts run Debian 13's exporter (web_exporter_nginx_deb_url), which
    authenticates: none is left out of the job."""
    jobs = {j["job_name"]: j for j in rendered("mon1", "prometheus_scrape_jobs")}
    instances = [c["labels"]["instance"] for c in jobs["nginx"]["static_configs"]]
    assert instances == ["east-web1", "west-web1"]
