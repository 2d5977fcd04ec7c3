"""apache role (with the tls role): DevSec apache baseline equivalents, TLS checks, scanners,
auth, headers, transactional rollout and bad-input handling."""

import json
import re

import pytest

from webfleet_web import (CURL, NAME, S_CLIENT, WebServer, allow_headers, fixtures, headers,
                          status)
# What every web server role must pass (TLS, scanners, logging, auth, bad input) is written once
# in tests/lib/webfleet_web.py; the star import takes exactly those tests (its __all__), and
# pytest collects them here, with this module's fixtures.
from webfleet_web import *  # noqa: F401,F403

WEB = WebServer(
    role="apache",
    service="apache2",
    conf_dir="/etc/apache2",
    log_dir="/var/log/apache2",
    config_test="apache2 -t",
    bad_directive="NoSuchDirective on",
    ports={"apache-deb12": 32443, "apache-deb13": 32444},
)
h, published, web = fixtures(WEB)


def conf(h):
    return h.run("cat /etc/apache2/apache2.conf /etc/apache2/webfleet/*.conf "
                 "/etc/apache2/webfleet/sites/*.conf").stdout


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
    assert [a.strip() for a in allow_headers(h, "TRACE")] == ["GET, HEAD, POST"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PROPFIND", "PATCH"])
def test_apache_10_methods(h, method):
    assert status(h, "/", f"-X {method}") == "405"
    # One Allow header naming the methods: Apache's own 405 would add an empty one.
    assert [a.strip() for a in allow_headers(h, method)] == ["GET, HEAD, POST"]


def test_apache_10_allowed_methods_still_work(h):
    assert status(h, "/") == "200" and status(h, "/", "-I") == "200"
    assert allow_headers(h, "GET") == [] and allow_headers(h, "GET", "/no-such-page") == []


def test_apache_10_405_page_only_on_the_error_path(h):
    # The local 405 page is served as the body of a refusal, never as a page of its own.
    assert "405 Method Not Allowed" in h.run(f"{CURL} -X PUT https://{NAME}/").stdout
    assert status(h, "/webfleet-405.html") == "403"


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

def test_tls_05_no_tls12_tickets(h):
    out = h.run(f"{S_CLIENT} -tls1_2 </dev/null 2>/dev/null").stdout
    assert "TLS session ticket:" not in out


@pytest.mark.parametrize("path", ["/", "/does-not-exist", "/private/"])
def test_tls_06_hsts_everywhere(h, path):
    assert headers(h, path)["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_tls_08_ocsp_stapling_off_for_internal_ca(h):
    assert "SSLUseStapling" not in conf(h)


def test_tls_09_certificate_and_chain(h):
    chain = h.run(f"{S_CLIENT} -showcerts </dev/null 2>/dev/null").stdout
    assert chain.count("BEGIN CERTIFICATE") == 2
    name = h.backend.get_hostname()
    f = h.file(f"/etc/webfleet/tls/{name}-ecdsa.key")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)


def test_tls_11_unknown_names_refused(h):
    # Apache has no ssl_reject_handshake: unknown SNI and Host get 403 from the catch-all.
    out = h.run("curl -sk -o /dev/null -w '%{http_code}' --resolve evil.example:443:127.0.0.1 "
                "https://evil.example/").stdout
    assert out in ("403", "000")
    assert h.run("curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' "
                 "http://127.0.0.1/").stdout == "403"


def test_cis_5_12_ip_address_host_refused(h):
    # An address in Host is a scanner or a misrouted client: the catch-all refuses it on both ports.
    for host in ("127.0.0.1", "192.0.2.10"):
        assert h.run(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {host}' "
                     "http://127.0.0.1/").stdout == "403", host
    # Over TLS an address gives no SNI, which SSLStrictSNIVHostCheck refuses.
    assert h.run("curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/").stdout == "403"


def test_no_fqdn_guess_warning(h):
    # A global ServerName: no AH00558 guess at each start and config test.
    out = h.run("apache2ctl -t 2>&1").stdout
    assert "Syntax OK" in out and "AH00558" not in out


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
    # Over CIS 10.1's 512 bytes, under Apache's stock 8190.
    assert status(h, "/" + "a" * 600, "--http1.1") == "414"
    assert status(h, "/.git/config") in ("403", "404")


def test_backup_files_denied(h):
    # Real files, so only the FilesMatch rule stands between them and a 200 (CIS 5.11).
    leftovers = ["products.json.bak", "products.json~", "products.json.swp"]
    h.run("cd /var/www/webfleet-demo && for f in " + " ".join(leftovers) + "; do cp products.json $f; done")
    try:
        assert status(h, "/products.json") == "200"
        for f in leftovers:
            assert status(h, "/" + f) == "403", f
    finally:
        h.run("cd /var/www/webfleet-demo && rm -f " + " ".join(leftovers))


def test_old_http_versions_refused(h):
    # CIS 5.9. Without ALPN, so the request reaches the rule rather than failing the handshake.
    assert status(h, "/", "--http1.0 --no-alpn") == "403"
    assert status(h, "/healthz", "--http1.0 --no-alpn") == "200"
    assert status(h, "/", "--http1.1") == "200"
    assert status(h, "/", "--http2") == "200"


def test_log_level(h):
    assert re.search(r"^LogLevel notice core:info$", conf(h), re.M)


def test_status_loopback_only(h):
    assert "Total Accesses" in h.run("curl -s 'http://127.0.0.1:8080/server-status?auto'").stdout
    listeners = h.run("ss -Hltn").stdout
    assert "127.0.0.1:8080" in listeners and "0.0.0.0:8080" not in listeners
    # DevSec apache-14: every virtual host logs, this one to its own file.
    # Apache writes the line after the response has gone, so give it a moment.
    assert h.run("for i in 1 2 3 4 5 6 7 8 9 10; do grep -q /server-status "
                 "/var/log/apache2/status-access.log && exit 0; sleep 0.2; done; exit 1").rc == 0
