"""apache role (with the tls role): DevSec apache baseline equivalents, TLS checks, scanners,
auth, headers, transactional rollout and bad-input handling."""

import hashlib
import json
import os
import re
import subprocess

import pytest

from webfleet_testlib import (SSLYZE_PROFILES, REPO, ansible_playbook, host as get_host,
                             sslyze_compliant)

HOSTS = ["apache-deb12", "apache-deb13"]
PORTS = {"apache-deb12": 32443, "apache-deb13": 32444}
NAME = "shop.molecule.webfleet.test"
PASSWORD = "lab-only-" + hashlib.sha1(b"molecule").hexdigest()[:12]
PKI = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "pki")
S_CLIENT = f"openssl s_client -connect 127.0.0.1:443 -servername {NAME}"
CURL = f"curl -sk --max-time 10 --resolve {NAME}:443:127.0.0.1"


@pytest.fixture(params=HOSTS, scope="module")
def h(request):
    return get_host(request.param)


def conf(h):
    return h.run("cat /etc/apache2/apache2.conf /etc/apache2/webfleet/*.conf "
                 "/etc/apache2/webfleet/sites/*.conf").stdout


def headers(h, path="/", extra=""):
    out = h.run(f"{CURL} -o /dev/null -D - {extra} https://{NAME}{path}").stdout
    return {k.strip().lower(): v.strip() for k, v in
            (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)}


def status(h, path="/", extra="", scheme="https"):
    return h.run(f"{CURL} -o /dev/null -w '%{{http_code}}' {extra} {scheme}://{NAME}{path}").stdout


def modules(h):
    return h.run("apache2ctl -M 2>/dev/null").stdout


# --- DevSec apache baseline equivalents --------------------------------------------------------

def test_apache_01_running(h):
    assert h.service("apache2").is_running


def test_apache_02_enabled(h):
    assert h.service("apache2").is_enabled


def test_apache_03_one_root_process(h):
    users = h.run("ps -o user= -C apache2").stdout.split()
    assert users.count("root") == 1 and "www-data" in users


def test_apache_04_config_dir(h):
    d = h.file("/etc/apache2")
    assert (d.user, d.group, d.mode) == ("root", "root", 0o751)


def test_apache_05_config_files(h):
    # DevSec checks conf-enabled/hardening.conf; here the hardening lives in webfleet/security.conf.
    for path in ("/etc/apache2/apache2.conf", "/etc/apache2/webfleet/security.conf",
                 "/etc/apache2/webfleet/sites/shop.conf"):
        f = h.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o640), path


def test_apache_06_user_group(h):
    out = h.run("apache2ctl -t -D DUMP_RUN_CFG 2>/dev/null").stdout
    assert 'User: name="www-data"' in out and 'Group: name="www-data"' in out


def test_apache_07_server_tokens(h):
    assert re.search(r"^ServerTokens Prod$", conf(h), re.M)
    assert headers(h)["server"] == "Apache"
    body = h.run(f"{CURL} https://{NAME}/nope").stdout
    assert "Apache/" not in body and "Server at" not in body


def test_apache_08_no_dav_cgi_include(h):
    assert not re.search(r"^\s*(dav|dav_fs|cgid?|include|autoindex|userdir|info)_module", modules(h), re.M)
    for m in ("ssl_module", "http2_module", "headers_module", "mpm_event_module", "allowmethods_module"):
        assert m in modules(h)


def test_apache_09_trace_off(h):
    assert re.search(r"^TraceEnable Off$", conf(h), re.M)
    assert status(h, "/", "-X TRACE") == "405"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PROPFIND", "PATCH"])
def test_apache_10_methods(h, method):
    assert status(h, "/", f"-X {method}") == "405"


def test_apache_10_allowed_methods_still_work(h):
    assert status(h, "/") == "200" and status(h, "/", "-I") == "200"


def test_apache_11_12_options(h):
    c = conf(h)
    assert "Options -Indexes -Includes -ExecCGI -FollowSymLinks +SymLinksIfOwnerMatch" in c
    assert not re.search(r"^\s*Options\s+.*(?<!-)\bIndexes\b", c, re.M)


def test_apache_13_cipher_order(h):
    # Deviation (documented): Mozilla 6.0 lets the client choose (SSLHonorCipherOrder off).
    assert re.search(r"^SSLHonorCipherOrder off$", conf(h), re.M)


def test_apache_14_every_vhost_logs(h):
    for path in h.run("ls /etc/apache2/webfleet/sites/*.conf /etc/apache2/webfleet/default-servers.conf").stdout.split():
        text = h.file(path).content_string
        vhosts = re.findall(r"<VirtualHost.*?</VirtualHost>", text, re.S)
        public = [v for v in vhosts if "127.0.0.1" not in v.splitlines()[0]]
        assert public and all("CustomLog" in v for v in public), path


# --- TLS -----------------------------------------------------------------------------------

def test_tls_01_protocols(h):
    assert h.run(f"{S_CLIENT} -tls1_2 </dev/null").rc == 0
    assert h.run(f"{S_CLIENT} -tls1_3 </dev/null").rc == 0
    assert h.run(f"{S_CLIENT} -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null").rc != 0


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA"])
def test_tls_02_no_cbc_no_rsa_kx(h, cipher):
    assert h.run(f"{S_CLIENT} -tls1_2 -cipher {cipher} </dev/null").rc != 0


def test_tls_03_groups(h):
    assert h.run(f"{S_CLIENT} -tls1_3 -groups secp521r1 </dev/null").rc != 0
    assert h.run(f"{S_CLIENT} -tls1_3 -groups X448 </dev/null").rc != 0
    for group, shown in (("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")):
        out = h.run(f"{S_CLIENT} -tls1_3 -groups {group} </dev/null 2>&1 | grep 'Temp Key'").stdout
        assert shown in out, group


def test_tls_05_no_tls12_tickets(h):
    out = h.run(f"{S_CLIENT} -tls1_2 </dev/null 2>/dev/null").stdout
    assert "TLS session ticket:" not in out


@pytest.mark.parametrize("path", ["/", "/does-not-exist", "/private/"])
def test_tls_06_hsts_everywhere(h, path):
    assert headers(h, path)["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_tls_07_redirect_308(h):
    out = h.run(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -H 'Host: {NAME}' "
                f"http://127.0.0.1/x?y=1").stdout
    assert out == f"308 https://{NAME}/x?y=1"


def test_tls_08_ocsp_stapling_off_for_internal_ca(h):
    assert "SSLUseStapling" not in conf(h)


def test_tls_09_certificate_and_chain(h):
    chain = h.run(f"{S_CLIENT} -showcerts </dev/null 2>/dev/null").stdout
    assert chain.count("BEGIN CERTIFICATE") == 2
    name = h.backend.get_hostname()
    f = h.file(f"/etc/webfleet/tls/{name}-ecdsa.key")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)


def test_tls_10_renegotiation_and_compression(h):
    out = h.run(f"{S_CLIENT} -tls1_2 </dev/null 2>&1").stdout
    assert "Secure Renegotiation IS supported" in out and "Compression: NONE" in out


def test_tls_11_unknown_names_refused(h):
    # Apache has no ssl_reject_handshake: unknown SNI and Host get 403 from the catch-all.
    out = h.run("curl -sk -o /dev/null -w '%{http_code}' --resolve evil.example:443:127.0.0.1 "
                "https://evil.example/").stdout
    assert out in ("403", "000")
    assert h.run("curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' "
                 "http://127.0.0.1/").stdout == "403"


def test_tls_12_alpn_h2(h):
    out = h.run(f"{S_CLIENT} -alpn h2,http/1.1 </dev/null 2>&1 | grep -a ALPN").stdout
    assert "ALPN protocol: h2" in out


@pytest.mark.parametrize("profile", sorted(SSLYZE_PROFILES))
@pytest.mark.parametrize("name", HOSTS)
def test_sslyze_mozilla_intermediate(name, profile):
    ok, out = sslyze_compliant(f"{NAME}:{PORTS[name]}{{127.0.0.1}}", os.path.join(PKI, "ca.crt"),
                               profile)
    assert ok, out


ALLOWED_TESTSSL = {"cert_expirationStatus", "cert_notAfter", "cert_revocation", "secure_renego",
                   "cert_trust", "cert_chain_of_trust"}


def test_testssl_no_high_or_critical(h):
    h.run("rm -f /tmp/testssl.json")
    h.run("grep -q ' " + NAME + "$' /etc/hosts || echo '127.0.0.1 " + NAME + "' >> /etc/hosts")
    h.run("timeout 240 testssl --quiet --color 0 --warnings off --nodns min "
          "--add-ca /etc/webfleet/tls/ca.crt --severity LOW --jsonfile-pretty /tmp/testssl.json "
          f"-p -E -f -S -h -U {NAME}:443")
    data = json.loads(h.file("/tmp/testssl.json").content_string)
    findings = []
    for result in data["scanResult"]:
        for items in result.values():
            if isinstance(items, list):
                findings += [i for i in items if isinstance(i, dict) and "severity" in i]
    bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")
           and f["id"] not in ALLOWED_TESTSSL]
    assert not bad, bad


# --- Behaviour -----------------------------------------------------------------------------

@pytest.mark.parametrize("path,extra", [
    ("/products.json", "cache-control"), ("/healthz", None), ("/nope", None), ("/private/", None)])
def test_headers_everywhere(h, path, extra):
    got = headers(h, path)
    for name in ("strict-transport-security", "x-frame-options", "x-content-type-options",
                 "content-security-policy", "referrer-policy"):
        assert name in got, f"{path}: {name} missing"
    if extra:
        assert got[extra] == "public, max-age=60"


def test_demo_shop_and_h2(h):
    products = json.loads(h.run(f"{CURL} https://{NAME}/products.json").stdout)
    assert len(products["products"]) == 3
    assert h.run(f"{CURL} --http2 -o /dev/null -w '%{{http_version}}' https://{NAME}/").stdout == "2"


def test_limits(h):
    big = "head -c 2048 /dev/zero | tr '\\0' a | "
    assert h.run(f"{big}{CURL} -o /dev/null -w '%{{http_code}}' --http1.1 --data-binary @- "
                 f"https://{NAME}/").stdout == "413"
    assert status(h, "/" + "a" * 2000, "--http1.1") == "414"
    assert status(h, "/.git/config") in ("403", "404")


def test_healthz_not_logged_and_json_log(h):
    before = h.run("wc -l < /var/log/apache2/access.log").stdout.strip()
    assert h.run(f"{CURL} https://{NAME}/healthz").stdout == "ok\n"
    assert h.run("curl -s http://127.0.0.1/healthz").stdout == "ok\n"
    assert h.run("wc -l < /var/log/apache2/access.log").stdout.strip() == before
    h.run(f"{CURL} -o /dev/null https://{NAME}/products.json")
    line = json.loads(h.run("tail -n1 /var/log/apache2/access.log").stdout)
    assert line["uri"] == "/products.json" and line["status"] == 200
    assert "request_time" in line and "upstream_response_time" in line


def test_status_loopback_only(h):
    assert "Total Accesses" in h.run("curl -s 'http://127.0.0.1:8080/server-status?auto'").stdout
    listeners = h.run("ss -Hltn").stdout
    assert "127.0.0.1:8080" in listeners and "0.0.0.0:8080" not in listeners


def test_basic_auth(h):
    assert status(h, "/private/") == "401"
    assert status(h, "/private/", "-u shopadmin:wrong-password") == "401"
    assert status(h, "/private/", f"-u shopadmin:{PASSWORD}") == "200"
    pw = h.file("/etc/apache2/webfleet/htpasswd/shop-1")
    assert pw.mode == 0o640 and pw.group == "www-data"
    assert pw.content_string.count("$2y$") == 1 and PASSWORD not in pw.content_string


@pytest.mark.parametrize("name", HOSTS)
def test_mtls_admin(name):
    base = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            "--cacert", os.path.join(PKI, "ca.crt"),
            "--resolve", f"{NAME}:{PORTS[name]}:127.0.0.1", f"https://{NAME}:{PORTS[name]}/admin/"]
    run = lambda *extra: subprocess.run(base[:1] + list(extra) + base[1:], capture_output=True,
                                        text=True, check=False).stdout
    assert run() == "403"
    assert run("--cert", os.path.join(PKI, "clients", "admin.crt"),
               "--key", os.path.join(PKI, "clients", "admin.key")) == "200"


# --- Bad inputs and the transactional rollout ------------------------------------------------

def _env():
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    env = {"ANSIBLE_ROLES_PATH": os.path.join(REPO, "roles"),
           "ANSIBLE_FILTER_PLUGINS": os.path.join(REPO, "plugins", "filter"),
           "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true"}
    if os.path.isfile(os.path.join(eph, "ansible.cfg")):
        env["ANSIBLE_CONFIG"] = os.path.join(eph, "ansible.cfg")
    return env


SITE = {"name": "shop", "server_names": [NAME], "root": "/var/www/webfleet-demo"}
BAD = [
    ("tls profile", {"apache_tls_profile": "modrn"}, "apache_tls_profile"),
    ("port 0", {"apache_sites": [dict(SITE, port=0)]}, "apache_sites[0] (shop): name must be"),
    ("duplicate name", {"apache_sites": [SITE, dict(SITE, name="shop2")]},
     "duplicate site name or server name"),
    ("location slash", {"apache_sites": [dict(SITE, locations=[{"path": "api"}])]},
     "apache_sites[0].locations[0].path: 'api' must start with /"),
    ("missing certificate", {"apache_sites": [dict(SITE, certificates=[
        {"cert": "/etc/webfleet/tls/missing.crt", "key": "/etc/webfleet/tls/missing.key"}])]},
     "apache_sites[0].certificates[0].cert: certificate file /etc/webfleet/tls/missing.crt does not exist"),
    ("tree fails apache2 -t", {"apache_sites": [dict(SITE, extra_directives=["NoSuchDirective on"])]},
     "fails apache2 -t, nothing was put live"),
]


@pytest.mark.parametrize("case,extra,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_and_old_config_serves(case, extra, message):
    proc = ansible_playbook("playbooks/web.yml", "-v", "--tags", "apache", "--limit", "apache-deb12",
                            "-e", json.dumps(extra), env=_env())
    assert proc.returncode != 0, f"{case}: the run should fail"
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert message in flat, flat[-3000:]
    assert PASSWORD not in proc.stdout
    h = get_host("apache-deb12")
    assert status(h, "/products.json") == "200"
    assert status(h, "/admin/") == "403", "the previous configuration is still live"
