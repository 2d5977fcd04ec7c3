"""Fleet wiring computed from the inventory, in one place.

Every tier asks these filters who its peers are instead of listing hosts by hand:

* ``webfleet_addresses``   - the addresses other hosts see a host connect from
* ``webfleet_firewall_allow`` - which sources may reach which port on a host (base role)
* ``webfleet_backends``    - the web servers an LB balances, own DC primary, others backup
* ``webfleet_scrape_targets`` - what Prometheus scrapes, labelled with dc, tier and env
* ``webfleet_in_network``  - the addresses of a list that lie in a network (keepalived peers)

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


def webfleet_in_network(addresses, network, var="network"):
    """The addresses of ``addresses`` inside ``network`` (a CIDR; host bits are ignored).

    ``var`` names the variables the network came from, for the error message.

    ansible.utils.ipaddr does this too, but it deep-copies its input to validate it, and a list
    computed from hostvars carries every variable of the play with it: on the lab that copy was
    a fifth of the controller's worker CPU in an idempotent re-run.
    """
    try:
        net = ipaddress.ip_network(str(network), strict=False)
    except ValueError as exc:
        raise AnsibleFilterError(f"{var}: {network!r} is not a network ({exc})") from exc
    return [str(a) for a in addresses
            if _is_network(a) and ipaddress.ip_address(str(a).split("/")[0]) in net]


# Hosts in this group are being removed from the fleet (playbooks/remove_host.yml): they are
# left out of every allowlist, LB and scrape config while still in the inventory.
RETIRED = "retired"


def _active(members, groups):
    retired = set(groups.get(RETIRED, []))
    return [m for m in members if m not in retired]


def _resolve_sources(sources, where, hostvars, groups):
    resolved = []
    for src in sources:
        if src == ANY:
            return [ANY]
        if src in groups or src in OPTIONAL_GROUPS:
            for member in _active(groups.get(src, []), groups):
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
        proto = rule.get("proto", "tcp")
        if proto not in ("tcp", "udp", "vrrp"):
            raise AnsibleFilterError(f"{where}.proto: {proto!r} is not one of tcp, udp, vrrp")
        # VRRP (IP protocol 112, keepalived between LBs) has no ports.
        ports = [] if proto == "vrrp" else _ports(rule, where)
        to = rule.get("to")
        if to != "all" and to not in groups and to not in OPTIONAL_GROUPS:
            raise AnsibleFilterError(f"{where}.to: {to!r} is not an inventory group")
        if inventory_hostname not in groups.get(to, []) and to != "all":
            continue
        sources = rule.get("from")
        if not isinstance(sources, list) or not sources:
            raise AnsibleFilterError(f"{where}.from must be a non-empty list")
        resolved = _resolve_sources(sources, where, hostvars, groups)
        if not resolved:
            # Only optional tier groups without members (a scenario without monitoring hosts,
            # say): nobody to allow, so no rule.
            continue
        allow.append({
            "name": rule["name"],
            "port": ports,
            "proto": proto,
            "sources": resolved,
        })
    return allow


def webfleet_backends(lb_host, hostvars, groups, web_group="web", hosts=None,
                      var="webfleet_lb_backend_hosts"):
    """Web servers behind an LB: those of the LB's DC are primary, the rest are backups.

    ``hosts`` optionally narrows the pool to these inventory hosts (``var`` names the variable
    they came from, for the error message); by default every host of ``web_group`` is a backend.
    Each backend is ``{name, address, dc, backup}``; ``address`` is ``webfleet_backend_address``
    when the inventory sets it, else the host's first address (``webfleet_addresses``). The
    order is stable (primaries first, then by DC and name) so the rendered config does not
    change between runs.
    """
    if lb_host not in hostvars:
        raise AnsibleFilterError(f"load balancer {lb_host!r} is not in the inventory")
    lb_dc = hostvars[lb_host].get("webfleet_dc")
    if not lb_dc:
        raise AnsibleFilterError(f"webfleet_dc is not set for {lb_host}")
    members = _active(groups.get(web_group, []), groups)
    if hosts is not None:
        if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
            raise AnsibleFilterError(f"{var} must be a list of inventory hosts, got {hosts!r}")
        for i, name in enumerate(hosts):
            if name not in hostvars:
                raise AnsibleFilterError(
                    f"{var}[{i}]: {name!r} is not a host in the inventory")
        members = list(hosts)
    backends = []
    for host in dict.fromkeys(members):
        hv = hostvars[host]
        dc = hv.get("webfleet_dc")
        if not dc:
            raise AnsibleFilterError(f"webfleet_dc is not set for {host}")
        address = hv.get("webfleet_backend_address") or webfleet_addresses(host, hostvars)[0]
        if not _is_network(address):
            raise AnsibleFilterError(
                f"webfleet_backend_address of {host}: {address!r} is not an IP address")
        backends.append({
            "name": host,
            "address": str(address),
            "dc": str(dc),
            "backup": dc != lb_dc,
        })
    if not backends:
        raise AnsibleFilterError(
            f"no web servers for {lb_host}: group {web_group!r} is empty and {var} is not set")
    return sorted(backends, key=lambda b: (b["backup"], b["dc"], b["name"]))


# Tier label of a host, from the first tier group it belongs to (webfleet_tier overrides).
TIER_GROUPS = (("lb", "lb"), ("web", "web"), ("nginx", "web"), ("apache", "web"),
               ("monitoring", "monitoring"))


def _tier(host, hv, groups):
    if hv.get("webfleet_tier"):
        return str(hv["webfleet_tier"])
    for group, tier in TIER_GROUPS:
        if host in groups.get(group, []):
            return tier
    return "other"


def webfleet_scrape_targets(hostvars, groups, group, port=None, env=None,
                            target="{address}:{port}", var="webfleet_scrape_targets",
                            labels=None, exclude=None, port_var=None):
    """Prometheus static_configs for every host of ``group``, labelled with dc, tier and env.

    One entry per host, sorted by host name so the rendered config is stable:
    ``{"targets": [target], "labels": {"instance": host, "dc", "tier", "env", ...labels}}``.

    * ``group`` is an inventory group, or ``all``; a tier group the inventory leaves out
      (``OPTIONAL_GROUPS``) gives no targets, any other unknown group is an error.
    * ``target`` is a format string with ``{address}``, ``{host}``, ``{port}`` and ``{dc}``:
      ``"{address}:{port}"`` for exporters, ``"https://{address}/healthz"`` for blackbox probes.
    * ``address`` is the host's ``webfleet_scrape_address`` when the inventory sets it, else the
      inventory host name: targets are scraped over TLS, and the host certificates name the
      inventory host (so that name must resolve on the monitoring hosts).
    * ``dc`` comes from ``webfleet_dc`` (an error when a host lacks it: alerts route and inhibit
      by DC), ``tier`` from ``webfleet_tier`` or the host's tier group, ``env`` from ``env`` or
      the host's ``webfleet_env``.
    * ``exclude`` lists hosts of ``group`` that are left out (a host whose exporter cannot be
      scraped remotely, say); a name that is not in the inventory is an error (a typo).
    * ``port_var`` names a host variable that, when the inventory sets it for a host, replaces
      ``port`` for that host (an exporter moved to another port on some hosts).
    """
    if group != "all" and group not in groups and group not in OPTIONAL_GROUPS:
        raise AnsibleFilterError(f"{var}: group {group!r} is not an inventory group")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 1 <= port <= 65535):
        raise AnsibleFilterError(f"{var}: port {port!r} is not a TCP port (an integer 1-65535)")
    if "{port}" in target and port is None:
        raise AnsibleFilterError(f"{var}: target {target!r} needs a port")
    extra = dict(labels or {})
    reserved = {"instance", "dc", "tier", "env"} & set(extra)
    if reserved:
        raise AnsibleFilterError(f"{var}: labels may not override {sorted(reserved)}")
    if exclude is None:
        exclude = []
    if isinstance(exclude, str) or not isinstance(exclude, (list, tuple)):
        raise AnsibleFilterError(f"{var}: exclude must be a list of inventory hosts, got {exclude!r}")
    for name in exclude:
        if name not in hostvars:
            raise AnsibleFilterError(f"{var}: exclude: {name!r} is not a host in the inventory")
    targets = []
    for host in sorted(set(_active(groups.get(group, []), groups)) - set(exclude)):
        if host not in hostvars:
            raise AnsibleFilterError(f"{var}: host {host!r} is not in the inventory")
        hv = hostvars[host]
        host_port = port
        if port_var and hv.get(port_var) is not None:
            host_port = hv[port_var]
            if isinstance(host_port, str) and host_port.isdigit():
                host_port = int(host_port)
            if (isinstance(host_port, bool) or not isinstance(host_port, int)
                    or not 1 <= host_port <= 65535):
                raise AnsibleFilterError(
                    f"{port_var} of {host}: {hv[port_var]!r} is not a TCP port (an integer 1-65535)")
        dc = hv.get("webfleet_dc")
        if not dc:
            raise AnsibleFilterError(
                f"webfleet_dc is not set for {host}: every scraped host needs its DC (put it in "
                f"a dc_<name> group)")
        environment = env or hv.get("webfleet_env")
        if not environment:
            raise AnsibleFilterError(f"webfleet_env is not set for {host}")
        address = str(hv.get("webfleet_scrape_address") or host)
        try:
            rendered = target.format(address=address, host=host, port=host_port, dc=dc)
        except (KeyError, IndexError, ValueError) as exc:
            raise AnsibleFilterError(f"{var}: bad target format {target!r}: {exc}") from exc
        targets.append({
            "targets": [rendered],
            "labels": {**{k: str(v) for k, v in extra.items()},
                       "instance": host,
                       "dc": str(dc),
                       "tier": _tier(host, hv, groups),
                       "env": str(environment)},
        })
    return targets


def webfleet_vip_targets(hostvars, groups, target="https://{vip}/healthz", labels=None,
                         var="webfleet_vip"):
    """Prometheus static_configs for each DC's virtual IP (its public entry point).

    The VIP of a DC is ``webfleet_vip`` of the DC's load balancers (set on the DC group); one
    entry per DC, sorted by DC: ``{"targets": [target], "labels": {"instance": "vip-<dc>",
    "dc", "tier": "lb", "env", ...labels}}``. ``target`` is a format string with ``{vip}`` and
    ``{dc}``. LBs of one DC that disagree on the VIP are an error (the inventory is the truth
    and must say one thing); a DC without a VIP gives no target.
    """
    extra = dict(labels or {})
    reserved = {"instance", "dc", "tier", "env"} & set(extra)
    if reserved:
        raise AnsibleFilterError(f"{var}: labels may not override {sorted(reserved)}")
    vips = {}
    for host in sorted(_active(groups.get("lb", []), groups)):
        hv = hostvars[host]
        vip = hv.get("webfleet_vip")
        if not vip:
            continue
        dc = hv.get("webfleet_dc")
        if not dc:
            raise AnsibleFilterError(f"webfleet_dc is not set for {host}: a VIP belongs to a DC")
        environment = hv.get("webfleet_env")
        if not environment:
            raise AnsibleFilterError(f"webfleet_env is not set for {host}")
        seen = vips.setdefault(str(dc), (str(vip), str(environment), host))
        if seen[0] != str(vip):
            raise AnsibleFilterError(
                f"{var}: the LBs of DC {dc} disagree: {seen[2]} has {seen[0]}, {host} has {vip}")
    out = []
    for dc, (vip, environment, _host) in sorted(vips.items()):
        try:
            rendered = target.format(vip=vip, dc=dc)
        except (KeyError, IndexError, ValueError) as exc:
            raise AnsibleFilterError(f"{var}: bad target format {target!r}: {exc}") from exc
        out.append({"targets": [rendered],
                    "labels": {**{k: str(v) for k, v in extra.items()}, "instance": f"vip-{dc}",
                               "dc": dc, "tier": "lb", "env": environment}})
    return out


class FilterModule:
    def filters(self):
        return {
            "webfleet_addresses": webfleet_addresses,
            "webfleet_firewall_allow": webfleet_firewall_allow,
            "webfleet_backends": webfleet_backends,
            "webfleet_scrape_targets": webfleet_scrape_targets,
            "webfleet_vip_targets": webfleet_vip_targets,
            "webfleet_in_network": webfleet_in_network,
        }
