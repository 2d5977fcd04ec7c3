"""tls role, source acme, against Pebble, with both web servers (acme-web runs nginx, acme-apache
runs Apache): the HTTP-01 challenges were really fetched from each web host, the web server
serves the Pebble-issued certificate for every name (with no OCSP stapling, as Pebble's
certificates name no responder), keys are private, the idempotence and
check-mode runs ordered nothing, bad ACME input fails naming the variable, and a new name is
ordered through the running web server (the renewal path) and served after the reload."""

import functools
import json
import re

import pytest

from webfleet_testlib import ansible_playbook, host as get_host

# Each web host has its own shop name (molecule.yml), so no name is answered by both.
WEBS = {
    "acme-web": {
        "server": "nginx",
        "names": ["acme-web", "shop.acme.webfleet.test"],
        "new_name": "www.acme.webfleet.test",
        "access_log": "/var/log/nginx/access.log",
    },
    "acme-apache": {
        "server": "apache2",
        "names": ["acme-apache", "store.acme.webfleet.test"],
        "new_name": "www.store.acme.webfleet.test",
        "access_log": "/var/log/apache2/access.log",
    },
}
HOST_NAMES = [(w, n) for w, spec in WEBS.items() for n in spec["names"]]
ROOT = "/tmp/pebble-root.pem"


@functools.lru_cache(maxsize=None)
def web(name):
    return get_host(name)


def crt(name):
    return f"/etc/webfleet/tls/{name}-ecdsa.crt"


@pytest.fixture(scope="module")
def pebble():
    h = get_host("acme-pebble")
    # Pebble makes a new issuing root at every start; its management API hands it out.
    out = h.run(f"curl -sf --cacert /etc/pebble/ca.crt -o {ROOT} https://acme-pebble:15000/roots/0")
    assert out.rc == 0, out.stderr
    return h


def recap(name, stdout):
    """(changed, failed) of host `name` in a play recap."""
    m = re.search(rf"^{re.escape(name)}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)",
                  stdout, re.M)
    assert m, f"no play recap for {name}: {stdout[-2000:]}"
    return int(m.group(1)), int(m.group(2))


def fingerprint(name):
    return web(name).run(f"openssl x509 -in {crt(name)} -noout -fingerprint -sha256").stdout.strip()


def serial(name):
    out = web(name).run(f"openssl x509 -in {crt(name)} -noout -serial").stdout.strip()
    return out.split("=", 1)[1].lower().lstrip("0")


def pebble_log(pebble):
    return pebble.run("journalctl -u pebble --no-pager -o cat").stdout


def issued(pebble):
    return [s.lstrip("0") for s in re.findall(r"Issued certificate serial ([0-9a-f]+)",
                                              pebble_log(pebble))]


def served(pebble, host, name):
    """openssl s_client from the Pebble container, across the scenario network, to port 443 of
    web host `host`, verifying the chain against Pebble's root and the name."""
    return pebble.run(f"openssl s_client -connect {host}:443 -servername {name} -verify_hostname {name} "
                      f"-verify_return_error -CAfile {ROOT} </dev/null 2>&1")


def access_log(name):
    """The JSON lines of the web server's access log on web host `name`."""
    text = web(name).run(f"cat {WEBS[name]['access_log']}").stdout
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # Apache escapes odd bytes as \xhh, which JSON does not know
    return entries


def test_pebble_really_validates(pebble):
    env = pebble.run("tr '\\0' '\\n' < /proc/$(pidof pebble)/environ").stdout
    assert "PEBBLE_VA_NOSLEEP=1" in env
    assert "PEBBLE_VA_ALWAYS_VALID" not in env


def test_web_hosts_resolve_to_themselves(pebble):
    """Pebble's view of the names (Docker's DNS): every name of a web host is that host's
    address, and no name is shared between the two hosts."""
    for host, spec in WEBS.items():
        addrs = {pebble.run(f"getent hosts {n}").stdout.split()[0] for n in spec["names"] + [spec["new_name"]]}
        assert addrs == {pebble.run(f"getent hosts {host}").stdout.split()[0]}, host
    all_names = [n for spec in WEBS.values() for n in spec["names"] + [spec["new_name"]]]
    assert len(all_names) == len(set(all_names))


@pytest.mark.parametrize("host,name", HOST_NAMES)
def test_http01_fetched_from_the_web_host(pebble, host, name):
    assert f"Attempting to validate w/ HTTP: http://{name}:80/.well-known/acme-challenge/" in pebble_log(pebble)


@pytest.mark.parametrize("host,name", HOST_NAMES)
def test_served_certificate_is_pebble_issued(pebble, host, name):
    out = served(pebble, host, name)
    assert out.rc == 0, out.stdout[-2000:]
    assert "Verify return code: 0 (ok)" in out.stdout
    assert re.search(r"issuer=.*Pebble Intermediate CA", out.stdout)


@pytest.mark.parametrize("host", WEBS)
def test_installed_certificate(pebble, host):
    w = web(host)
    text = w.run(f"openssl x509 -in {crt(host)} -noout -issuer -ext subjectAltName").stdout
    assert "Pebble Intermediate CA" in text
    sans = sorted(re.findall(r"DNS:([^,\s]+)", text))
    assert sans == sorted(WEBS[host]["names"]), text
    assert serial(host) in issued(pebble)
    # The file the web server serves is the one the ACME order wrote.
    ordered = w.file(f"/etc/webfleet/acme/{host}-ecdsa.crt").content_string.strip()
    assert w.file(crt(host)).content_string.strip() == ordered
    chain = w.file(f"/etc/webfleet/tls/{host}-ecdsa.fullchain.pem").content_string
    assert chain.count("BEGIN CERTIFICATE") == 2


@pytest.mark.parametrize("host", WEBS)
def test_keys_are_private(host):
    w = web(host)
    for path in (f"/etc/webfleet/tls/{host}-ecdsa.key", f"/etc/webfleet/tls/{host}-ecdsa.bundle.pem",
                 f"/etc/webfleet/acme/{host}-ecdsa.key", "/etc/webfleet/acme/account.key"):
        f = w.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path
    d = w.file("/etc/webfleet/acme")
    assert (d.user, d.mode) == ("root", 0o700)
    assert w.file("/etc/webfleet").mode == 0o750
    assert w.run("find /etc/webfleet -name '*.key' -perm /077").stdout == ""


@pytest.mark.parametrize("host", WEBS)
def test_no_challenge_leftovers(host):
    w = web(host)
    assert w.run("ls -A /var/www/acme/.well-known/acme-challenge").stdout == ""
    assert w.run("systemctl is-active webfleet-acme-http01").stdout.strip() != "active"
    # The web server, not the temporary server, answers on port 80 now.
    assert w.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz").stdout == "200"
    listeners = w.run("ss -Hltnp 'sport = :80'").stdout
    assert f'(("{WEBS[host]["server"]}"' in listeners, listeners
    assert "python3" not in listeners


@pytest.mark.parametrize("host", WEBS)
def test_no_ocsp_stapling_for_acme_certificates(host):
    """Pebble, like Let's Encrypt since 2025, puts no OCSP URL in its certificates, so the roles
    leave stapling off for ACME by default (molecule.yml sets nothing) and neither server
    complains about it: nginx would warn at every config test, Apache log AH02604 at start."""
    w = web(host)
    assert w.run(f"openssl x509 -in {crt(host)} -noout -ocsp_uri").stdout.strip() == ""
    if WEBS[host]["server"] == "nginx":
        out = w.run("nginx -T 2>&1")
        assert out.rc == 0, out.stdout[-2000:]
        assert "ssl_stapling" not in out.stdout
    else:
        assert w.run("grep -rl SSLUseStapling /etc/apache2/").stdout == ""
        assert w.run("grep -ci stapling /var/log/apache2/error.log").stdout.strip() == "0"


@pytest.mark.parametrize("host,name", HOST_NAMES)
def test_port_80_redirects_all_but_the_challenges(pebble, host, name):
    """From across the scenario network: port 80 of every name answers 308 to https, except the
    challenge directory, which is served (a missing file is 404, not a redirect)."""
    out = pebble.run(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' "
                     f"'http://{name}/products.json?x=1'").stdout
    assert out == f"308 https://{name}/products.json?x=1"
    out = pebble.run(f"curl -s -o /dev/null -w '%{{http_code}}' "
                     f"http://{name}/.well-known/acme-challenge/missing").stdout
    assert out == "404"


@pytest.mark.parametrize("host", WEBS)
def test_catch_all_serves_the_challenges_of_unknown_names(pebble, host):
    """A Host that no site carries reaches the catch-all port-80 server, which serves the
    challenge directory too (how a name being added is validated)."""
    out = pebble.run(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: unknown.acme.webfleet.test' "
                     f"http://{host}/.well-known/acme-challenge/missing").stdout
    assert out == "404"


@pytest.mark.parametrize("host", WEBS)
def test_converge_idempotence_and_check_ordered_nothing(pebble, host):
    """make test ran converge, idempotence and a check-mode converge before verify: Pebble issued
    exactly one certificate per web host, the one installed."""
    certs = issued(pebble)
    assert len(certs) == len(WEBS), certs
    assert certs.count(serial(host)) == 1, (serial(host), certs)


def test_bad_acme_input_fails_naming_the_variable(pebble):
    host = "acme-web"
    before, count = fingerprint(host), len(issued(pebble))
    bad = {"tls_acme_directory": "", "tls_acme_email": "hostmaster-at-example"}
    proc = ansible_playbook("playbooks/web.yml", "--tags", "tls", "--limit", host,
                            "-e", json.dumps(bad))
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert "tls_acme_directory: '' must be the https:// URL of the ACME directory" in flat, flat[-3000:]
    assert ("tls_acme_email: 'hostmaster-at-example' must be the e-mail address of the ACME account"
            in flat)
    assert fingerprint(host) == before and len(issued(pebble)) == count


@pytest.mark.parametrize("host", WEBS)
def test_new_name_is_ordered_through_the_web_server(pebble, host):
    """Runs last: it changes the certificate. A name that no site carries yet is validated
    through the running web server (its catch-all port-80 server serves the challenge
    directory), then the web server reloads and serves the new certificate for every name."""
    spec, new_name = WEBS[host], WEBS[host]["new_name"]
    shop = spec["names"][1]
    w = web(host)
    # The running web server does not carry the new name yet.
    config = w.run(f"grep -rlF '{new_name}' /etc/nginx /etc/apache2").stdout
    assert config == "", config
    before, count = fingerprint(host), len(issued(pebble))
    extra = {"tls_extra_names": [shop, new_name]}
    proc = ansible_playbook("playbooks/web.yml", "--limit", host, "-e", json.dumps(extra))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap(host, proc.stdout)[1] == 0
    assert "PRIVATE KEY" not in proc.stdout
    assert fingerprint(host) != before
    assert len(issued(pebble)) == count + 1
    assert serial(host) in issued(pebble)
    assert (f"Attempting to validate w/ HTTP: http://{new_name}:80/.well-known/acme-challenge/"
            in pebble_log(pebble))
    fetched = [e for e in access_log(host)
               if e.get("uri", "").startswith("/.well-known/acme-challenge/") and e.get("host") == new_name]
    assert fetched, f"the challenge of {new_name} was not fetched through {spec['server']}"
    assert all(e["status"] == 200 for e in fetched), fetched
    text = w.run(f"openssl x509 -in {crt(host)} -noout -ext subjectAltName").stdout
    assert f"DNS:{new_name}" in text
    for name in spec["names"] + [new_name]:
        out = served(pebble, host, name)
        assert out.rc == 0 and "Verify return code: 0 (ok)" in out.stdout, (name, out.stdout[-1500:])
