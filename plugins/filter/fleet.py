"""Fleet wiring computed from the inventory, in one place.

Every tier asks these filters who its peers are instead of listing hosts by hand:

* ``webfleet_addresses``   - the addresses other hosts see a host connect from
* ``webfleet_firewall_allow`` - which sources may reach which port on a host (base role)
* ``webfleet_backends``    - the web servers an LB balances, own DC primary, others backup
* ``webfleet_scrape_targets`` - what Prometheus scrapes, labelled with dc, tier and env

Errors name the inventory variable or host at fault, so a typo in the inventory fails early
with a message an operator can act on.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

ANY = "any"


def _is_network(value):
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return True


def _ports(rule, where):
    ports = rule.get("port")
    ports = ports if isinstance(ports, list) else [ports]
    out = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise AnsibleFilterError(
                f"{where}.port: {port!r} is not a TCP/UDP port (an integer 1-65535)")
        out.append(port)
    return out


def webfleet_addresses(hostname, hostvars):
    """Addresses a host's traffic comes from, as other hosts see it.

    Order of truth: ``webfleet_addresses`` set in the inventory (a list), ``ansible_host`` when
    it is an IP address, the host's gathered facts. No answer is an error: an allowlist that
    silently loses a host would cut it off.
    """
    if hostname not in hostvars:
        raise AnsibleFilterError(f"host {hostname!r} is not in the inventory")
    hv = hostvars[hostname]
    explicit = hv.get("webfleet_addresses")
    if explicit:
        bad = [a for a in explicit if not _is_network(a)]
        if bad:
            raise AnsibleFilterError(
                f"webfleet_addresses of {hostname}: {bad!r} are not IP addresses")
        return list(explicit)
    host = hv.get("ansible_host")
    if host and _is_network(host):
        return [str(host)]
    facts = hv.get("ansible_facts") or {}
    found = list(facts.get("all_ipv4_addresses") or []) + [
        a for a in (facts.get("all_ipv6_addresses") or []) if not a.lower().startswith("fe80")]
    if found:
        return found
    raise AnsibleFilterError(
        f"no address known for {hostname}: set webfleet_addresses in the inventory or gather "
        f"its facts first (site.yml does)")


def _resolve_sources(sources, where, hostvars, groups):
    resolved = []
    for src in sources:
        if src == ANY:
            return [ANY]
        if src in groups or src in OPTIONAL_GROUPS:
            for member in groups.get(src, []):
                resolved.extend(webfleet_addresses(member, hostvars))
        elif _is_network(src):
            resolved.append(str(src))
        else:
            raise AnsibleFilterError(
                f"{where}.from: {src!r} is neither an inventory group, an address nor 'any'")
    # Stable order, no duplicates: the rendered ruleset must not change between runs.
    return sorted(set(resolved), key=lambda a: (":" in a, a))


# Tier groups every webfleet inventory may leave out (a scenario without LBs, say): a rule that
# names one of them simply matches no host. Any other unknown group is a typo and an error.
OPTIONAL_GROUPS = ("web", "nginx", "apache", "lb", "monitoring")


def webfleet_firewall_allow(access, inventory_hostname, hostvars, groups, var="webfleet_access"):
    """Turn the fleet access model into the allow entries of one host's firewall.

    ``access`` is a list of ``{name, port, proto, to, from}``; ``to`` is an inventory group (or
    ``all``) that receives the traffic, ``from`` a list of groups, addresses/CIDRs or ``any``.
    """
    if not isinstance(access, list):
        raise AnsibleFilterError(f"{var} must be a list of rules, got {type(access).__name__}")
    allow = []
    for i, rule in enumerate(access):
        where = f"{var}[{i}]"
        if not isinstance(rule, dict) or "name" not in rule:
            raise AnsibleFilterError(f"{where} must be a dict with at least name, port, to, from")
        where = f"{var}[{i}] ({rule['name']})"
        ports = _ports(rule, where)
        proto = rule.get("proto", "tcp")
        if proto not in ("tcp", "udp"):
            raise AnsibleFilterError(f"{where}.proto: {proto!r} is not one of tcp, udp")
        to = rule.get("to")
        if to != "all" and to not in groups and to not in OPTIONAL_GROUPS:
            raise AnsibleFilterError(f"{where}.to: {to!r} is not an inventory group")
        if inventory_hostname not in groups.get(to, []) and to != "all":
            continue
        sources = rule.get("from")
        if not isinstance(sources, list) or not sources:
            raise AnsibleFilterError(f"{where}.from must be a non-empty list")
        allow.append({
            "name": rule["name"],
            "port": ports,
            "proto": proto,
            "sources": _resolve_sources(sources, where, hostvars, groups),
        })
    return allow


def webfleet_backends(lb_host, hostvars, groups, web_group="web"):
    """Web servers behind an LB: those of the LB's DC are primary, the rest are backups."""
    lb_dc = hostvars[lb_host].get("webfleet_dc")
    if not lb_dc:
        raise AnsibleFilterError(f"webfleet_dc is not set for {lb_host}")
    backends = []
    for host in groups.get(web_group, []):
        hv = hostvars[host]
        dc = hv.get("webfleet_dc")
        if not dc:
            raise AnsibleFilterError(f"webfleet_dc is not set for {host}")
        backends.append({
            "name": host,
            "address": webfleet_addresses(host, hostvars)[0] if not hv.get("webfleet_backend_address")
            else hv["webfleet_backend_address"],
            "dc": dc,
            "backup": dc != lb_dc,
        })
    return sorted(backends, key=lambda b: (b["backup"], b["dc"], b["name"]))


def webfleet_scrape_targets(hostvars, groups, group, port, env=None):
    """Prometheus static targets for every host of a group, labelled with dc, tier and env."""
    targets = []
    for host in groups.get(group, []):
        hv = hostvars[host]
        targets.append({
            "targets": [f"{hv.get('webfleet_scrape_address', host)}:{port}"],
            "labels": {
                "instance": host,
                "dc": str(hv.get("webfleet_dc", "none")),
                "tier": str(hv.get("webfleet_tier", group)),
                "env": str(env or hv.get("webfleet_env", "none")),
            },
        })
    return targets


class FilterModule:
    def filters(self):
        return {
            "webfleet_addresses": webfleet_addresses,
            "webfleet_firewall_allow": webfleet_firewall_allow,
            "webfleet_backends": webfleet_backends,
            "webfleet_scrape_targets": webfleet_scrape_targets,
        }
