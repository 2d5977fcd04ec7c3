"""Checks every web server role must pass, written once for the nginx and apache scenarios.

A scenario's test module describes its server (``WebServer``), takes every test below with
``from webfleet_web import *`` (pytest collects them there; ``__all__`` holds the tests only) and
gives them the fixtures they ask for from ``fixtures()``:

- ``h``: a testinfra host, once per web host of the scenario;
- ``published``: ``(host, port)``, once per web host: the HTTPS port the container publishes on
  127.0.0.1, for scanners and clients that run on this machine;
- ``web``: the ``WebServer`` under test.

What differs between the servers (Apache has no ``ssl_reject_handshake``, nginx answers 401 on
/private/ without HSTS, each has its own configuration dump) stays in the scenario's module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass

import pytest

from webfleet_testlib import SSLYZE_PROFILES, ansible_playbook, host, sslyze_compliant

# The scenarios' shop (molecule/<scenario>/molecule.yml) and the lab-only password its
# basic-auth user gets there.
NAME = "shop.molecule.webfleet.test"
PASSWORD = "lab-only-" + hashlib.sha1(b"molecule").hexdigest()[:12]
PKI = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "pki")
S_CLIENT = f"openssl s_client -connect 127.0.0.1:443 -servername {NAME}"
CURL = f"curl -sk --max-time 10 --resolve {NAME}:443:127.0.0.1"


@dataclass(frozen=True)
class WebServer:
    role: str           # the role: its tag, its variables' prefix, its hosts' name prefix
    service: str        # its systemd unit
    conf_dir: str       # where the role writes its configuration
    log_dir: str        # where the access log is
    config_test: str    # how the role names its configuration check in a refusal
    bad_directive: str  # a directive the server does not know
    ports: dict         # each web host (container) of the scenario: its HTTPS port on 127.0.0.1

    @property
    def first_host(self):
        return next(iter(self.ports))


def fixtures(server):
    """The fixtures the shared tests ask for, for one scenario's server: (h, published, web)."""

    @pytest.fixture(params=list(server.ports), scope="module")
    def h(request):
        return host(request.param)

    @pytest.fixture(params=list(server.ports.items()), ids=list(server.ports))
    def published(request):
        return request.param

    @pytest.fixture(scope="module")
    def web():
        return server

    return h, published, web


def headers(h, path="/", extra=""):
    out = h.run(f"{CURL} -o /dev/null -D - {extra} https://{NAME}{path}").stdout
    return {k.strip().lower(): v.strip() for k, v in
            (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)}


def allow_headers(h, method, path="/"):
    """Every Allow header of the answer to method (a list: a repeated or empty one is a defect)."""
    out = h.run(f"{CURL} -o /dev/null -D - -X {method} https://{NAME}{path}").stdout
    return re.findall(r"^allow:(.*?)\r?$", out, re.M | re.I)


def status(h, path="/", extra="", scheme="https"):
    return h.run(f"{CURL} -o /dev/null -w '%{{http_code}}' {extra} {scheme}://{NAME}{path}").stdout


# --- TLS (reference section 1) -----------------------------------------------------------------

def test_tls_01_protocols(h):
    assert h.run(f"{S_CLIENT} -tls1_2 </dev/null").rc == 0
    assert h.run(f"{S_CLIENT} -tls1_3 </dev/null").rc == 0
    assert h.run(f"{S_CLIENT} -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null").rc != 0


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA"])
def test_tls_02_no_cbc_no_rsa_kx(h, cipher):
    assert h.run(f"{S_CLIENT} -tls1_2 -cipher {cipher} </dev/null").rc != 0


def test_tls_03_groups(h):
    # TLS 1.3 separates key-exchange groups from the certificate's curve.
    assert h.run(f"{S_CLIENT} -tls1_3 -groups secp521r1 </dev/null").rc != 0
    assert h.run(f"{S_CLIENT} -tls1_3 -groups X448 </dev/null").rc != 0
    for group, shown in (("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")):
        out = h.run(f"{S_CLIENT} -tls1_3 -groups {group} </dev/null 2>&1 | grep 'Temp Key'").stdout
        assert shown in out, group


def test_tls_07_redirect_308(h):
    out = h.run(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -H 'Host: {NAME}' "
                f"http://127.0.0.1/x?y=1").stdout
    assert out == f"308 https://{NAME}/x?y=1"


def test_tls_10_renegotiation_and_compression(h):
    out = h.run(f"{S_CLIENT} -tls1_2 </dev/null 2>&1").stdout
    assert "Secure Renegotiation IS supported" in out and "Compression: NONE" in out


def test_tls_12_alpn_h2(h):
    out = h.run(f"{S_CLIENT} -alpn h2,http/1.1 </dev/null 2>&1 | grep -a ALPN").stdout
    assert "ALPN protocol: h2" in out


# --- Scanners ----------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", sorted(SSLYZE_PROFILES))
def test_sslyze_mozilla_intermediate(published, profile):
    _name, port = published
    ok, out = sslyze_compliant(f"{NAME}:{port}{{127.0.0.1}}", os.path.join(PKI, "ca.crt"), profile)
    assert ok, out


# testssl's findings that an internal CA's short-lived certificates raise by design, and BREACH:
# the demo pages are compressed and carry no secret (WEB-12, documented beside the gzip defaults).
ALLOWED_TESTSSL = {"cert_expirationStatus", "cert_notAfter", "cert_revocation", "secure_renego",
                   "cert_trust", "cert_chain_of_trust", "BREACH"}


def test_testssl_no_medium_or_worse(h):
    h.run("rm -f /tmp/testssl.json")
    h.run("grep -q ' " + NAME + "$' /etc/hosts || echo '127.0.0.1 " + NAME + "' >> /etc/hosts")
    h.run("timeout 240 testssl --quiet --color 0 --warnings off --nodns min "
          "--add-ca /etc/webfleet/tls/ca.crt --severity LOW --jsonfile-pretty /tmp/testssl.json "
          f"-p -E -f -S -h -U {NAME}:443")
    # The file was removed above: reading it fails when testssl did not run.
    data = json.loads(h.file("/tmp/testssl.json").content_string)
    assert data["scanResult"], "testssl scanned nothing"
    findings = []
    for result in data["scanResult"]:
        for items in result.values():
            if isinstance(items, list):
                findings += [i for i in items if isinstance(i, dict) and "severity" in i]
    bad = [f for f in findings if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL")
           and f["id"] not in ALLOWED_TESTSSL]
    assert not bad, bad


# --- Behaviour and auth ------------------------------------------------------------------------

def test_healthz_not_logged_and_json_log(h, web):
    log = f"{web.log_dir}/access.log"
    before = h.run(f"wc -l < {log}").stdout.strip()
    assert h.run(f"{CURL} https://{NAME}/healthz").stdout == "ok\n"
    assert h.run("curl -s http://127.0.0.1/healthz").stdout == "ok\n"
    assert h.run(f"wc -l < {log}").stdout.strip() == before
    h.run(f"{CURL} -o /dev/null https://{NAME}/products.json")
    line = json.loads(h.run(f"tail -n1 {log}").stdout)
    assert line["uri"] == "/products.json" and line["status"] == 200
    assert "request_time" in line and "upstream_response_time" in line


def test_basic_auth(h, web):
    assert status(h, "/private/") == "401"
    assert status(h, "/private/", "-u shopadmin:wrong-password") == "401"
    assert status(h, "/private/", f"-u shopadmin:{PASSWORD}") == "200"
    pw = h.file(f"{web.conf_dir}/webfleet/htpasswd/shop-1")
    assert pw.mode == 0o640 and pw.group == "www-data"
    assert pw.content_string.count("$2y$") == 1 and PASSWORD not in pw.content_string


def test_mtls_admin(published):
    name, port = published
    base = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            "--cacert", os.path.join(PKI, "ca.crt"),
            "--resolve", f"{NAME}:{port}:127.0.0.1", f"https://{NAME}:{port}/admin/"]

    def run(*extra):
        return subprocess.run(base[:1] + list(extra) + base[1:], capture_output=True, text=True,
                              check=False).stdout

    assert run() == "403", name
    assert run("--cert", os.path.join(PKI, "clients", "admin.crt"),
               "--key", os.path.join(PKI, "clients", "admin.key")) == "200", name


# --- REL-02: a configuration change is reloaded, never restarted -------------------------------

HSTS = "max-age=63072000; includeSubDomains"


def main_pid(h, service):
    return h.run(f"systemctl show -p MainPID --value {service}").stdout.strip()


def test_config_change_reloads_not_restarts(web):
    h = host(web.first_host)
    before = main_pid(h, web.service)
    assert before not in ("", "0"), f"{web.service} is not running"
    role_run = ["playbooks/web.yml", "--tags", web.role, "--limit", web.first_host]
    proc = ansible_playbook(*role_run, "-e", json.dumps({f"{web.role}_hsts_max_age": 31536000}))
    try:
        assert proc.returncode == 0, proc.stdout[-3000:]
        # Served by the running master: the new header is live and its PID is the same.
        assert headers(h, "/products.json")["strict-transport-security"] == \
            "max-age=31536000; includeSubDomains"
        assert main_pid(h, web.service) == before, "the change restarted the server"
    finally:
        # Back to the scenario's configuration, for the tests that follow.
        restore = ansible_playbook(*role_run)
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert headers(h, "/products.json")["strict-transport-security"] == HSTS
    assert main_pid(h, web.service) == before


# --- Bad inputs and the transactional rollout; no secret in any run's output -------------------

SITE = {"name": "shop", "server_names": [NAME], "root": "/var/www/webfleet-demo"}
BAD_CASES = ["tls profile", "port 0", "duplicate name", "location slash", "missing certificate",
             "tree fails the config test"]


def bad_input(web, case):
    """(extra vars, message the refusal must contain) for one bad-input case of web's role."""
    sites = f"{web.role}_sites"
    missing = {"cert": "/etc/webfleet/tls/missing.crt", "key": "/etc/webfleet/tls/missing.key"}
    return {
        "tls profile": ({f"{web.role}_tls_profile": "modrn"}, f"{web.role}_tls_profile"),
        "port 0": ({sites: [dict(SITE, port=0)]}, f"{sites}[0] (shop): name must be"),
        "duplicate name": ({sites: [SITE, dict(SITE, name="shop2")]},
                           "duplicate site name or server name"),
        "location slash": ({sites: [dict(SITE, locations=[{"path": "api"}])]},
                           f"{sites}[0].locations[0].path: 'api' must start with /"),
        "missing certificate": ({sites: [dict(SITE, certificates=[missing])]},
                                f"{sites}[0].certificates[0].cert: certificate file "
                                f"{missing['cert']} does not exist"),
        "tree fails the config test": ({sites: [dict(SITE, extra_directives=[web.bad_directive])]},
                                       f"fails {web.config_test}, nothing was put live"),
    }[case]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_fails_and_old_config_serves(web, case):
    extra, message = bad_input(web, case)
    # Only the role under test (and its common dependency): the tls role is proven by the converge.
    proc = ansible_playbook("playbooks/web.yml", "-v", "--tags", web.role,
                            "--limit", web.first_host, "-e", json.dumps(extra))
    assert proc.returncode != 0, f"{case}: the run should fail"
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert message in flat, flat[-3000:]
    assert PASSWORD not in proc.stdout
    h = host(web.first_host)
    assert status(h, "/products.json") == "200"
    assert status(h, "/admin/") == "403", "the previous configuration is still live"


# Last, so that it lists every test above: what `from webfleet_web import *` hands a suite.
__all__ = [name for name in list(globals()) if name.startswith("test_")]
