"""The webfleet alert rules: shape, and a promtool unit test for every rule.

`promtool test rules` itself runs inside the monitoring scenario's Prometheus hosts (Debian 12's
promtool 2.42 and Debian 13's 2.53; molecule/monitoring/tests/test_monitoring.py), because a
fresh CI machine has no promtool. Here the same files are checked for what promtool cannot see:
every required alert exists, carries severity, summary, description and runbook, and has both a
firing and a quiet test case. When promtool is on PATH, the unit tests run here too.
"""

import os
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES_DIR = os.path.join(REPO, "roles", "prometheus", "files", "rules")
TESTS = os.path.join(REPO, "tests", "promtool", "webfleet_test.yml")
REQUIRED = {
    "InstanceDown", "HighCpu", "MemoryPressure", "DiskFillingUp", "NetworkErrors",
    "Http5xxRatioHigh", "LatencyP95High", "BackendServerDown", "DatacenterAllBackendsDown",
    "CertificateExpiringSoon", "ProbeFailing", "TargetMissing", "AlertmanagerClusterDegraded",
    "WebServerStatusUnreachable",
}


def _rules():
    out = {}
    for name in sorted(os.listdir(RULES_DIR)):
        with open(os.path.join(RULES_DIR, name), encoding="utf-8") as fh:
            for group in yaml.safe_load(fh)["groups"]:
                for rule in group["rules"]:
                    if "alert" in rule:
                        out[rule["alert"]] = rule
    return out


def _tests():
    with open(TESTS, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_every_required_alert_exists():
    assert REQUIRED <= set(_rules()), sorted(REQUIRED - set(_rules()))


@pytest.mark.parametrize("alert", sorted(REQUIRED))
def test_alert_has_severity_and_runbook_text(alert):
    rule = _rules()[alert]
    assert rule["labels"]["severity"] in ("warning", "critical")
    for key in ("summary", "description", "runbook"):
        assert str(rule["annotations"].get(key, "")).strip(), f"{alert}: no {key}"
    assert rule.get("for"), f"{alert}: no `for`, it would fire on a single bad sample"


@pytest.mark.parametrize("alert", sorted(REQUIRED))
def test_alert_has_a_firing_and_a_quiet_unit_test(alert):
    cases = [case for test in _tests()["tests"] for case in test.get("alert_rule_test", [])
             if case["alertname"] == alert]
    assert any(case["exp_alerts"] for case in cases), f"{alert}: no test where it fires"
    assert any(not case["exp_alerts"] for case in cases), f"{alert}: no test where it stays quiet"


def test_unit_tests_load_every_rule_file():
    listed = {os.path.basename(p) for p in _tests()["rule_files"]}
    assert listed == set(os.listdir(RULES_DIR))
    with open(os.path.join(REPO, "roles", "prometheus", "vars", "main.yml"), encoding="utf-8") as fh:
        shipped = set(yaml.safe_load(fh)["__prometheus_builtin_rules"])
    assert shipped == set(os.listdir(RULES_DIR)), "the role must ship every rule file"


@pytest.mark.skipif(not shutil.which("promtool"),
                    reason="no promtool here; the monitoring scenario runs the unit tests")
def test_promtool_unit_tests_pass_here_too():
    run = subprocess.run(["promtool", "test", "rules", TESTS], cwd=os.path.dirname(TESTS),
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
