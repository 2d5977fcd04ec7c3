"""base role: kernel, sshd, firewall (both ways), upgrades, time, journal, input validation."""

import re

import pytest

from webfleet_testlib import ansible_playbook, can_connect, host, in_container

WEB, LB, MON = "base-web", "base-lb", "base-mon"

SYSCTL = {
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "kernel.randomize_va_space": "2",
    "fs.suid_dumpable": "0",
}


@pytest.fixture(scope="module")
def listeners():
    """Something listening on the web and exporter ports of the web host."""
    web = host(WEB)
    for port in (80, 9100):
        web.run(f"systemctl stop wf-test-{port} 2>/dev/null; "
                f"systemd-run --unit=wf-test-{port} python3 -m http.server {port}")
    for port in (80, 9100):
        assert web.run(f"for i in $(seq 50); do ss -ltn | grep -q ':{port} ' && exit 0; "
                       f"sleep 0.1; done; exit 1").rc == 0
    yield web
    for port in (80, 9100):
        web.run(f"systemctl stop wf-test-{port}")


@pytest.mark.parametrize("key,value", sorted(SYSCTL.items()))
def test_sysctl_file(host, key, value):
    conf = host.file("/etc/sysctl.d/60-webfleet.conf")
    assert conf.user == "root"
    assert re.search(rf"^{re.escape(key)}\s*=\s*{value}$", conf.content_string, re.M)


@pytest.mark.parametrize("key,value", sorted(SYSCTL.items()))
def test_sysctl_live(host, key, value):
    # DevSec linux-baseline skips kernel checks in containers too: the kernel is the host's.
    if in_container(host):
        pytest.skip("kernel parameters belong to the container host")
    assert host.sysctl(key) == int(value)


def test_ip_forward_left_alone(host):
    assert "ip_forward" not in host.file("/etc/sysctl.d/60-webfleet.conf").content_string


def test_sshd_effective_config():
    web = host(WEB)
    effective = web.run("/usr/sbin/sshd -T").stdout
    expected = {
        "permitrootlogin": "without-password",
        "passwordauthentication": "no",
        "x11forwarding": "no",
        "allowtcpforwarding": "no",
        "maxauthtries": "2",
        "loglevel": "VERBOSE",
        "maxsessions": "10",
        "maxstartups": "10:30:60",
        "logingracetime": "30",
        "clientaliveinterval": "300",
        "clientalivecountmax": "3",
        "tcpkeepalive": "no",
        "ignoreuserknownhosts": "yes",
        "kerberosauthentication": "no",
        "gssapiauthentication": "no",
        "gssapicleanupcredentials": "yes",
        "permittunnel": "no",
        "gatewayports": "no",
        "x11uselocalhost": "yes",
        "allowagentforwarding": "no",
        "permituserenvironment": "no",
        "printlastlog": "no",
        "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
                   "aes256-ctr,aes192-ctr,aes128-ctr",
        "macs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
                "umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256",
        "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256@libssh.org,"
                         "diffie-hellman-group-exchange-sha256",
    }
    for key, value in expected.items():
        assert re.search(rf"^{key} {re.escape(value)}$", effective, re.M | re.I), key
    # sshd-47: DebianBanner is not in sshd -T; read the identification string itself.
    banner = web.check_output("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/22; head -n1 <&3'")
    assert banner.startswith("SSH-2.0-OpenSSH_") and "Debian" not in banner, banner
    # sshd-48: no Diffie-Hellman group under 2048 bits is offered.
    assert web.file("/etc/ssh/moduli").size > 0
    assert web.run("awk '$5 < 2047 && $5 ~ /^[0-9]+$/' /etc/ssh/moduli").stdout == ""
    conf = web.file("/etc/ssh/sshd_config")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o600)
    assert web.service("ssh").is_running


def test_sshd_not_installed_where_absent():
    lb = host(LB)
    assert not lb.file("/usr/sbin/sshd").exists
    assert not lb.file("/etc/ssh/sshd_config").exists


def test_firewall_default_deny(host):
    rules = host.run("nft list table inet webfleet").stdout
    assert "policy drop" in rules
    assert "ct state established,related accept" in rules
    assert host.service("nftables").is_enabled


def test_web_port_reachable_from_lb_and_monitoring(listeners):
    # wiring.yml: web ports from [lb, monitoring] (monitoring probes /healthz).
    assert can_connect(host(LB), WEB, 80), "the LB must reach the web port"
    assert can_connect(host(MON), WEB, 80), "monitoring must reach the web port"


def test_exporter_port_reachable_from_monitoring_only(listeners):
    assert can_connect(host(MON), WEB, 9100), "monitoring must reach the exporter port"
    assert not can_connect(host(LB), WEB, 9100), "the LB is not allowed on the exporter port"


def test_firewall_reload_keeps_other_tables():
    """A reload replaces only table inet webfleet: rules other tools keep survive."""
    web = host(WEB)
    web.run("nft add table inet wf_other && nft add chain inet wf_other c")
    try:
        assert web.run("systemctl reload nftables").rc == 0
        assert web.run("nft list table inet wf_other").rc == 0
        assert web.run("nft list table inet webfleet").rc == 0
    finally:
        web.run("nft delete table inet wf_other")


def test_unattended_upgrades(host):
    assert host.package("unattended-upgrades").is_installed
    dump = host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert "label=Debian-Security" in host.file(
        "/etc/apt/apt.conf.d/50unattended-upgrades").content_string


def test_timesync(host):
    assert host.package("chrony").is_installed
    assert host.service("chrony").is_enabled
    sources = host.file("/etc/chrony/sources.d/webfleet.sources").content_string
    assert "pool 0.debian.pool.ntp.org iburst" in sources
    assert not re.search(r"^pool 2\.debian", host.file("/etc/chrony/chrony.conf").content_string,
                         re.M)


LOGIN_DEFS = {"UMASK": "027", "PASS_MAX_DAYS": "60", "PASS_MIN_DAYS": "7", "PASS_WARN_AGE": "7",
              "LOGIN_RETRIES": "5", "LOGIN_TIMEOUT": "60"}
CRON = ["/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly",
        "/etc/cron.monthly", "/etc/cron.yearly"]


def test_login_defs(host):
    # DevSec os-05: each key set once, on an active line.
    f = host.file("/etc/login.defs")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    active = [line.split(None, 1) for line in f.content_string.splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    for key, value in LOGIN_DEFS.items():
        assert [v.strip() for k, v in active if k == key] == [value], key
    # A new home directory is closed to other users: on Debian 12 useradd derives its mode from
    # UMASK (0750; Debian's 022 gave 0755), Debian 13 ships HOME_MODE 0700. Debian enables no
    # pam_umask, so UMASK does not reach login sessions.
    probe = "wf-umask-probe"
    try:
        assert host.run(f"useradd -m -s /usr/sbin/nologin {probe}").rc == 0
        assert host.file(f"/home/{probe}").mode & 0o007 == 0
    finally:
        host.run(f"userdel -r {probe}")


def test_cron_root_only(host):
    # DevSec os-13. The images have the cron directories even without cron: the test is not vacuous.
    present = [p for p in CRON if host.file(p).exists]
    assert "/etc/cron.d" in present
    for path in present:
        f = host.file(path)
        mode = 0o700 if f.is_directory else 0o600
        assert (f.user, f.group, f.mode) == ("root", "root", mode), path


def test_cron_loosened_by_hand_is_closed_again():
    # The role touches only entries that are not root's alone: loosen two, and exactly those two
    # are put back (the rest are skipped), and a second run changes nothing.
    web = host(WEB)
    loosen = "chmod 0755 /etc/cron.d && chgrp daemon /etc/crontab && chmod 0644 /etc/crontab"
    assert web.run(loosen).rc == 0
    fixed = ansible_playbook("playbooks/base.yml", "--limit", WEB, "--tags", "base_cron")
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    changed = re.findall(r"changed: \[base-web\] => \(item=(\S+)\)", fixed.stdout)
    assert sorted(changed) == ["/etc/cron.d", "/etc/crontab"], fixed.stdout[-3000:]
    assert (web.file("/etc/crontab").group, web.file("/etc/crontab").mode) == ("root", 0o600)
    assert web.file("/etc/cron.d").mode == 0o700
    again = ansible_playbook("playbooks/base.yml", "--limit", WEB, "--tags", "base_cron")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]


def test_journald_retention(host):
    conf = host.file("/etc/systemd/journald.conf.d/60-webfleet.conf").content_string
    assert "SystemMaxUse=500M" in conf
    assert "MaxRetentionSec=1month" in conf


def test_templates_say_managed(host):
    for path in ("/etc/nftables.conf", "/etc/apt/apt.conf.d/50unattended-upgrades"):
        assert "managed by Ansible" in host.file(path).content_string


@pytest.mark.parametrize("extra,message", [
    ('{"base_firewall_allow": [{"name": "bad", "port": 70000, "sources": ["any"]}]}',
     "base_firewall_allow[0] (bad): port 70000 is not a port number 1-65535"),
    ('{"webfleet_access": [{"name": "bad", "port": 70000, "to": "web", "from": ["lb"]}]}',
     "webfleet_access[0] (bad).port: 70000 is not a TCP/UDP port"),
    ('{"base_login_defs": {"UMASK": "0x27"}}',
     "base_login_defs.UMASK (0x27)"),
    ('{"base_firewall_default_action": "deny"}',
     "base_firewall_default_action"),
    ('{"webfleet_access": [{"name": "typo", "port": 80, "to": "webb", "from": ["lb"]}]}',
     "webfleet_access[0] (typo).to: 'webb' is not an inventory group"),
])
def test_bad_input_fails_naming_the_variable(extra, message):
    before = host(WEB).file("/etc/nftables.conf").content_string
    run = ansible_playbook("playbooks/base.yml", "-e", extra, "--limit", WEB)
    assert run.returncode != 0, run.stdout
    flat = " ".join(run.stdout.split())
    assert message in flat, run.stdout[-3000:]
    # Nothing was changed on the host by the failed run.
    assert host(WEB).file("/etc/nftables.conf").content_string == before
    assert "changed=0" in flat
