"""tls role, source acme, against Pebble: the HTTP-01 challenges were really fetched from the web
host, nginx serves the Pebble-issued certificate for every name, keys are private, the
idempotence and check-mode runs ordered nothing, bad ACME input fails naming the variable, and a
new name is ordered through the running nginx (the renewal path) and served after the reload."""

import json
import os
import re

import pytest

from webfleet_testlib import ansible_playbook, host as get_host

WEB = "acme-web"
NAMES = ["acme-web", "shop.acme.webfleet.test"]
NEW_NAME = "www.acme.webfleet.test"
CRT = f"/etc/webfleet/tls/{WEB}-ecdsa.crt"
ROOT = "/tmp/pebble-root.pem"
RECAP = re.compile(rf"^{WEB}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def web():
    return get_host(WEB)


@pytest.fixture(scope="module")
def pebble():
    h = get_host("acme-pebble")
    # Pebble makes a new issuing root at every start; its management API hands it out.
    out = h.run(f"curl -sf --cacert /etc/pebble/ca.crt -o {ROOT} https://acme-pebble:15000/roots/0")
    assert out.rc == 0, out.stderr
    return h


def _env():
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    env = {"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true"}
    if os.path.isfile(os.path.join(eph, "ansible.cfg")):
        env["ANSIBLE_CONFIG"] = os.path.join(eph, "ansible.cfg")
    return env


def fingerprint(web):
    return web.run(f"openssl x509 -in {CRT} -noout -fingerprint -sha256").stdout.strip()


def serial(web):
    out = web.run(f"openssl x509 -in {CRT} -noout -serial").stdout.strip()
    return out.split("=", 1)[1].lower().lstrip("0")


def pebble_log(pebble):
    return pebble.run("journalctl -u pebble --no-pager -o cat").stdout


def issued(pebble):
    return [s.lstrip("0") for s in re.findall(r"Issued certificate serial ([0-9a-f]+)",
                                              pebble_log(pebble))]


def served(pebble, name):
    """openssl s_client from the Pebble container, across the scenario network, verifying the
    chain against Pebble's root and the name."""
    return pebble.run(f"openssl s_client -connect {WEB}:443 -servername {name} -verify_hostname {name} "
                      f"-verify_return_error -CAfile {ROOT} </dev/null 2>&1")


def test_pebble_really_validates(pebble):
    env = pebble.run("tr '\\0' '\\n' < /proc/$(pidof pebble)/environ").stdout
    assert "PEBBLE_VA_NOSLEEP=1" in env
    assert "PEBBLE_VA_ALWAYS_VALID" not in env


@pytest.mark.parametrize("name", NAMES)
def test_http01_fetched_from_the_web_host(pebble, name):
    assert f"Attempting to validate w/ HTTP: http://{name}:80/.well-known/acme-challenge/" in pebble_log(pebble)


@pytest.mark.parametrize("name", NAMES)
def test_served_certificate_is_pebble_issued(pebble, name):
    out = served(pebble, name)
    assert out.rc == 0, out.stdout[-2000:]
    assert "Verify return code: 0 (ok)" in out.stdout
    assert re.search(r"issuer=.*Pebble Intermediate CA", out.stdout)


def test_installed_certificate(web, pebble):
    text = web.run(f"openssl x509 -in {CRT} -noout -issuer -ext subjectAltName").stdout
    assert "Pebble Intermediate CA" in text
    for name in NAMES:
        assert f"DNS:{name}" in text
    assert serial(web) in issued(pebble)
    # The file nginx serves is the one the ACME order wrote.
    ordered = web.file(f"/etc/webfleet/acme/{WEB}-ecdsa.crt").content_string.strip()
    assert web.file(CRT).content_string.strip() == ordered
    chain = web.file(f"/etc/webfleet/tls/{WEB}-ecdsa.fullchain.pem").content_string
    assert chain.count("BEGIN CERTIFICATE") == 2


def test_keys_are_private(web):
    for path in (f"/etc/webfleet/tls/{WEB}-ecdsa.key", f"/etc/webfleet/tls/{WEB}-ecdsa.bundle.pem",
                 f"/etc/webfleet/acme/{WEB}-ecdsa.key", "/etc/webfleet/acme/account.key"):
        f = web.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path
    d = web.file("/etc/webfleet/acme")
    assert (d.user, d.mode) == ("root", 0o700)
    assert web.file("/etc/webfleet").mode == 0o750
    assert web.run("find /etc/webfleet -name '*.key' -perm /077").stdout == ""


def test_no_challenge_leftovers(web):
    assert web.run("ls -A /var/www/acme/.well-known/acme-challenge").stdout == ""
    assert web.run("systemctl is-active webfleet-acme-http01").stdout.strip() != "active"
    # nginx, not the temporary server, answers on port 80 now.
    assert web.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz").stdout == "200"
    assert "nginx" in web.run("ss -Hltnp 'sport = :80'").stdout


def test_converge_idempotence_and_check_ordered_nothing(web, pebble):
    """make test ran converge, idempotence and a check-mode converge before verify: Pebble issued
    exactly one certificate, the one installed."""
    assert issued(pebble) == [serial(web)]


def test_bad_acme_input_fails_naming_the_variable(web, pebble):
    before, count = fingerprint(web), len(issued(pebble))
    bad = {"tls_acme_directory": "", "tls_acme_email": "hostmaster-at-example"}
    proc = ansible_playbook("playbooks/web.yml", "--tags", "tls", "--limit", WEB,
                            "-e", json.dumps(bad), env=_env())
    flat = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert "tls_acme_directory: '' must be the https:// URL of the ACME directory" in flat, flat[-3000:]
    assert ("tls_acme_email: 'hostmaster-at-example' must be the e-mail address of the ACME account"
            in flat)
    assert fingerprint(web) == before and len(issued(pebble)) == count


def test_new_name_is_ordered_through_nginx(web, pebble):
    """Runs last: it changes the certificate. A name that no site carries yet is validated
    through the running nginx (its catch-all port-80 server serves the challenge directory),
    then nginx reloads and serves the new certificate."""
    before = fingerprint(web)
    extra = {"tls_extra_names": ["shop.acme.webfleet.test", NEW_NAME]}
    proc = ansible_playbook("playbooks/web.yml", "--limit", WEB, "-e", json.dumps(extra), env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert RECAP.search(proc.stdout).groups()[1] == "0"
    assert "PRIVATE KEY" not in proc.stdout
    assert fingerprint(web) != before
    assert serial(web) in issued(pebble)
    log = web.run("grep -h acme-challenge /var/log/nginx/access.log").stdout
    assert log, "the challenge was not fetched through nginx"
    for name in NAMES + [NEW_NAME]:
        out = served(pebble, name)
        assert out.rc == 0 and "Verify return code: 0 (ok)" in out.stdout, (name, out.stdout[-1500:])
