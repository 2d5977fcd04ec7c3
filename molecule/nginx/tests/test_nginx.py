"""nginx role (with the tls role): DevSec nginx baseline equivalents, TLS checks, scanners,
auth, header inheritance, transactional rollout and bad-input handling."""

import json
import os
import re

import pytest

from webfleet_testlib import ansible_playbook, host as get_host
from webfleet_web import (CURL, NAME, PKI, S_CLIENT, WebServer, allow_headers, fixtures, headers,
                          status)
# What every web server role must pass (TLS, scanners, logging, auth, bad input) is written once
# in tests/lib/webfleet_web.py; the star import takes exactly those tests (its __all__), and
# pytest collects them here, with this module's fixtures.
from webfleet_web import *  # noqa: F401,F403

WEB = WebServer(
    role="nginx",
    service="nginx",
    conf_dir="/etc/nginx",
    log_dir="/var/log/nginx",
    config_test="nginx -t",
    bad_directive="no_such_directive on",
    ports={"nginx-deb12": 31443, "nginx-deb13": 31444},
)
h, published, web = fixtures(WEB)


def nginx_t(h):
    return h.run("nginx -T 2>/dev/null").stdout


def directive(conf, name):
    return re.findall(rf"^\s*{name}\s+(.*?);\s*$", conf, re.M)


# --- DevSec nginx baseline equivalents ---------------------------------------------------------

def test_nginx_01_worker_user(h):
    assert h.user("www-data").exists
    assert directive(h.file("/etc/nginx/nginx.conf").content_string, "user") == ["www-data"]
    users = h.run("ps -o user= -C nginx").stdout.split()
    assert users.count("root") == 1 and "www-data" in users
    # CIS 2.2.2/2.2.3: the worker account has no shell and no usable password.
    assert h.user("www-data").shell == "/usr/sbin/nologin"
    assert h.check_output("passwd -S www-data").split()[1] == "L"


def test_nginx_pid_file(h):
    # CIS 2.3.3: only root may rewrite the PID file a reload signals.
    pid = h.file("/run/nginx.pid")
    assert (pid.user, pid.group, pid.mode) == ("root", "root", 0o644)
    assert pid.content_string.strip() == h.check_output("pgrep -o -x nginx")


def test_nginx_02_config_permissions(h):
    for path in ("/etc/nginx/nginx.conf", "/etc/nginx/webfleet/headers.conf",
                 "/etc/nginx/webfleet/sites/shop.conf"):
        f = h.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o640), path


def test_nginx_03_default_site_removed(h):
    assert not h.file("/etc/nginx/conf.d/default.conf").exists
    assert not h.file("/etc/nginx/sites-enabled/default").exists
    # The package's pages name nginx (CIS 2.5.2): gone, not just unlinked from a site.
    for page in ("/var/www/html/index.nginx-debian.html", "/usr/share/nginx/html/index.html"):
        assert not h.file(page).exists, page
    assert "Welcome to nginx" not in h.run(f"{CURL} https://{NAME}/").stdout


def test_nginx_04_one_master(h):
    assert h.run("ps -eo args | grep -c '^nginx: master'").stdout.strip() == "1"


def test_nginx_05_server_tokens(h):
    assert directive(nginx_t(h), "server_tokens") == ["off"]
    assert headers(h)["server"] == "nginx"
    assert "nginx/" not in h.run(f"{CURL} https://{NAME}/nope").stdout


def test_nginx_06_buffers_and_limits(h):
    conf = nginx_t(h)
    assert directive(conf, "client_max_body_size") == ["1k"]
    assert directive(conf, "client_body_buffer_size") == ["1k"]
    assert directive(conf, "client_header_buffer_size") == ["1k"]
    assert directive(conf, "large_client_header_buffers") == ["2 1k"]
    big = "head -c 2048 /dev/zero | tr '\\0' a | "
    assert h.run(f"{big}{CURL} -o /dev/null -w '%{{http_code}}' --http1.1 --data-binary @- "
                 f"https://{NAME}/healthz").stdout == "413"
    assert status(h, "/" + "a" * 2000, "--http1.1") == "414"
    # One header line larger than a 1k large_client_header_buffers buffer.
    assert status(h, "/", "--http1.1 -H 'X-Big: " + "a" * 1500 + "'") == "400"


def test_nginx_07_limit_conn_and_req(h):
    conf = nginx_t(h)
    assert directive(conf, "limit_conn_zone") and directive(conf, "limit_conn")
    assert directive(conf, "limit_req_zone") and directive(conf, "limit_req")


@pytest.mark.parametrize("name,value", [
    ("x-frame-options", "SAMEORIGIN"),                       # nginx-08
    ("x-xss-protection", "1; mode=block"),                    # nginx-09
    ("x-content-type-options", "nosniff"),                   # nginx-10
])
def test_nginx_08_09_10_headers(h, name, value):
    assert headers(h)[name] == value


def test_nginx_12_tls_protocols_and_tickets(h):
    # Deviation (documented): Mozilla 6.0 ciphers and client preference instead of DevSec's list.
    conf = nginx_t(h)
    assert directive(conf, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert directive(conf, "ssl_session_tickets") == ["off"]


def test_nginx_13_hsts(h):
    hsts = headers(h)["strict-transport-security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31536000
    assert "includeSubDomains" in hsts


@pytest.mark.parametrize("method", ["PUT", "DELETE", "TRACE", "OPTIONS", "PATCH"])
def test_nginx_14_methods(h, method):
    assert status(h, "/", f"-X {method}") == "405"
    assert [a.strip() for a in allow_headers(h, method)] == ["GET, HEAD, POST"]
    assert status(h, "/healthz", "-X POST") == "200"
    # Only the refusals name the methods: pages and their errors come from locations.
    assert "allow" not in headers(h, "/products.json")
    assert "allow" not in headers(h, "/no-such-page")


def test_nginx_15_csp(h):
    csp = headers(h)["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp


def test_nginx_17_timeouts(h):
    conf = nginx_t(h)
    assert directive(conf, "keepalive_timeout") == ["5 5"]
    for name in ("client_body_timeout", "client_header_timeout", "send_timeout"):
        assert directive(conf, name) == ["10"], name


# --- TLS (reference section 1) -----------------------------------------------------------------

def test_tls_03_tls12_curves(h):
    out = h.run(f"{S_CLIENT} -tls1_2 -curves X25519:prime256v1 </dev/null 2>&1 | grep 'Temp Key'")
    assert "X25519" in out.stdout


def test_tls_04_client_preference(h):
    assert directive(nginx_t(h), "ssl_prefer_server_ciphers") == ["off"]


def test_tls_05_no_tls12_tickets(h):
    out = h.run(f"{S_CLIENT} -tls1_2 </dev/null 2>/dev/null").stdout
    assert "TLS session ticket:" not in out
    assert directive(nginx_t(h), "ssl_session_cache") == ["shared:MozSSL:10m"]


@pytest.mark.parametrize("path", ["/", "/does-not-exist"])
def test_tls_06_hsts_everywhere(h, path):
    assert headers(h, path)["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_tls_08_ocsp_stapling_off_for_internal_ca(h):
    assert not directive(nginx_t(h), "ssl_stapling")
    assert "OCSP response: no response sent" in h.run(f"{S_CLIENT} -status </dev/null 2>&1").stdout


# With stapling on, nginx asks the host's own DNS servers for the responder (there is no
# systemd-resolved on 127.0.0.53 to ask). Check mode shows the configuration without putting it live.
def test_tls_08_stapling_asks_the_hosts_resolver():
    h = get_host("nginx-deb12")
    nameservers = h.run("awk '/^nameserver/ {print $2}' /etc/resolv.conf").stdout.split()
    assert nameservers
    before = nginx_t(h)
    proc = ansible_playbook("playbooks/web.yml", "--tags", "nginx", "--limit", "nginx-deb12",
                            "--check", "--diff", "-e", json.dumps({"nginx_ocsp_stapling": True}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "+ssl_stapling on;" in proc.stdout, proc.stdout[-3000:]
    assert f"+resolver {' '.join(nameservers)} valid=300s;" in proc.stdout
    assert nginx_t(h) == before


def test_tls_08_stapling_without_resolver_refused():
    h = get_host("nginx-deb12")
    before = nginx_t(h)
    proc = ansible_playbook("playbooks/web.yml", "--tags", "nginx", "--limit", "nginx-deb12",
                            "-e", json.dumps({"nginx_ocsp_stapling": True, "nginx_resolver": []}))
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert "nginx_resolver is empty, but nginx_ocsp_stapling is on" in flat, flat[-3000:]
    assert nginx_t(h) == before
    assert status(h, "/products.json") == "200"


def test_tls_09_certificate(h):
    name = h.backend.get_hostname()
    crt = f"/etc/webfleet/tls/{name}-ecdsa.crt"
    text = h.run(f"openssl x509 -in {crt} -noout -text").stdout
    assert "Public-Key: (256 bit)" in text and "ecdsa-with-SHA" in text
    assert "DNS:" + NAME in text and "DNS:" + name in text
    days = h.run(f"openssl x509 -in {crt} -noout -checkend {31 * 86400}").rc
    assert days != 0, "leaf lives longer than the 30 days configured"
    for suffix in ("key", "bundle.pem"):
        f = h.file(f"/etc/webfleet/tls/{name}-ecdsa.{suffix}")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    # Full chain served (leaf + CA).
    chain = h.run(f"{S_CLIENT} -showcerts </dev/null 2>/dev/null").stdout
    assert chain.count("BEGIN CERTIFICATE") == 2
    assert h.file("/usr/local/share/ca-certificates/webfleet-ca.crt").exists
    assert h.run(f"curl -s --resolve {NAME}:443:127.0.0.1 https://{NAME}/healthz").stdout == "ok\n"


def test_tls_11_unknown_sni_rejected(h):
    out = h.run("openssl s_client -connect 127.0.0.1:443 -noservername </dev/null 2>&1")
    assert out.rc != 0 and "unrecognized name" in out.stdout
    assert h.run("openssl s_client -connect 127.0.0.1:443 -servername evil.example </dev/null").rc != 0
    assert h.run("curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' "
                 "http://127.0.0.1/").stdout == "000"


# --- Behaviour: headers, health, status, logging ---------------------------------------------

@pytest.mark.parametrize("path,extra", [
    ("/products.json", "cache-control"), ("/healthz", None), ("/nope", None),
    ("/.git/config", None), ("/admin/", None)])
def test_header_inheritance(h, path, extra):
    """A location that adds its own header keeps every security header (add_header rule)."""
    got = headers(h, path)
    for name in ("strict-transport-security", "x-frame-options", "x-content-type-options",
                 "content-security-policy", "referrer-policy"):
        assert name in got, f"{path}: {name} missing"
    if extra:
        assert got[extra] == "public, max-age=60"


def test_demo_shop(h):
    assert status(h, "/") == "200"
    products = json.loads(h.run(f"{CURL} https://{NAME}/products.json").stdout)
    assert len(products["products"]) == 3
    assert h.run(f"{CURL} --http2 -o /dev/null -w '%{{http_version}}' https://{NAME}/").stdout == "2"


def test_hidden_files_and_no_autoindex(h):
    assert status(h, "/.git/config") == "404"
    assert not re.search(r"^\s*autoindex\s+on", nginx_t(h), re.M)
    assert not re.search(r"^\s*dav_methods", nginx_t(h), re.M)


def test_log_rotation(h):
    # CIS 3.4: the package's logrotate entry stays in place for our log directory.
    rotate = h.file("/etc/logrotate.d/nginx").content_string
    assert "/var/log/nginx/*.log" in rotate
    assert re.search(r"^\s*rotate\s+\d+", rotate, re.M)
    assert re.search(r"^\s*(daily|weekly)\s*$", rotate, re.M)


def test_gzip_compresses_text(h):
    # nginx_gzip is on by default; the demo shop's pages carry no secrets (BREACH, CIS 2.1.3).
    got = headers(h, "/", "-H 'Accept-Encoding: gzip'")
    assert got.get("content-encoding") == "gzip", got


def test_stub_status_loopback_only(h):
    assert "Active connections" in h.run("curl -s http://127.0.0.1:8080/stub_status").stdout
    listeners = h.run("ss -Hltn").stdout
    assert "127.0.0.1:8080" in listeners and "0.0.0.0:8080" not in listeners


def test_keys_not_world_readable(h):
    assert h.run("find /etc/webfleet/tls /etc/nginx -name '*.key' -perm /077").stdout == ""


# --- tls role, source "provided": installs vault PEMs; a mismatching key fails early ----------

def _pem(name):
    with open(os.path.join(PKI, "hosts", name), encoding="ascii") as f:
        return f.read()


def test_tls_provided_source():
    ca = open(os.path.join(PKI, "ca.crt"), encoding="ascii").read()
    good = {"tls_source": "provided", "tls_provided": {
        "cert": _pem("nginx-deb12-ecdsa.crt"), "chain": ca, "key": _pem("nginx-deb12-ecdsa.key")}}
    proc = ansible_playbook("playbooks/web.yml", "--tags", "tls", "--limit", "nginx-deb12",
                            "-e", json.dumps(good))
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The same PEMs as the internal CA issued: installed identically, nothing changes.
    assert re.search(r"nginx-deb12\s+:\s+ok=\d+\s+changed=0\s", proc.stdout), proc.stdout[-2000:]
    assert "PRIVATE KEY" not in proc.stdout

    bad = {"tls_source": "provided", "tls_provided": {
        "cert": _pem("nginx-deb13-ecdsa.crt"), "chain": ca, "key": _pem("nginx-deb12-ecdsa.key")}}
    proc = ansible_playbook("playbooks/web.yml", "--tags", "tls", "--limit", "nginx-deb12",
                            "-e", json.dumps(bad))
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert "tls_provided.cert: the ecdsa certificate misses names from tls_names: DNS:nginx-deb12" in flat
    assert "does not match tls_provided.key" in flat and "Nothing was installed" in flat
    assert "PRIVATE KEY" not in proc.stdout
    h = get_host("nginx-deb12")
    assert "DNS:nginx-deb12" in h.run("openssl x509 -noout -ext subjectAltName "
                                      "-in /etc/webfleet/tls/nginx-deb12-ecdsa.crt").stdout
    assert status(h, "/products.json") == "200"


def _expired_cert_for(key_pem, names):
    """A certificate for key_pem covering names that expired yesterday (self-signed: the check
    must refuse it for its dates before anything else looks at it)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_tls_expired_certificate_refused():
    key = _pem("nginx-deb12-ecdsa.key")
    h = get_host("nginx-deb12")
    before = h.file("/etc/webfleet/tls/nginx-deb12-ecdsa.crt").content_string
    expired = {"tls_source": "provided", "tls_provided": {
        "cert": _expired_cert_for(key, ["nginx-deb12", NAME]), "chain": "", "key": key}}
    proc = ansible_playbook("playbooks/web.yml", "--tags", "tls", "--limit", "nginx-deb12",
                            "-e", json.dumps(expired))
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert "tls_provided.cert: the ecdsa certificate has expired" in flat, flat[-3000:]
    assert "Nothing was installed" in flat and "PRIVATE KEY" not in proc.stdout
    assert h.file("/etc/webfleet/tls/nginx-deb12-ecdsa.crt").content_string == before
    assert status(h, "/products.json") == "200"
