"""Per-site wiring shared by the web roles (nginx and apache), in one place.

Both roles take the same list of sites (``nginx_sites`` / ``apache_sites``) and derive the same
things from it; these filters are that derivation, so the two roles cannot drift apart:

* ``webfleet_site_certs``      - the certificate and key files each site serves
* ``webfleet_site_cert_files`` - every one of those files, with the variable that names it
* ``webfleet_site_htpasswd``   - one password file per location that has ``auth_users``

The input checks themselves (names, ports, paths) are the common role's ``check_sites`` entry
point; these filters assume a list of site dicts and raise a clear error when it is not one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

TLS_DIR = "/etc/webfleet/tls"


def _sites(sites, var):
    if isinstance(sites, (str, bytes)) or not isinstance(sites, Sequence):
        raise AnsibleFilterError(f"{var}: must be a list of sites, got {type(sites).__name__}")
    for index, site in enumerate(sites):
        if not isinstance(site, Mapping) or not site.get("name"):
            raise AnsibleFilterError(f"{var}[{index}]: a site must be a dict with a name")
    return sites


def webfleet_site_certs(sites, key_types, tls_files=None, hostname="", var="sites"):
    """Map each site name to its list of {cert, key} files.

    A site's own ``certificates`` win; otherwise it serves the tls role's files, one pair per
    key type (``tls_files[type].fullchain`` / ``.key``, or their standard paths under
    /etc/webfleet/tls when the tls role has not run in this play, as with --tags).
    """
    tls_files = tls_files or {}
    out = {}
    for site in _sites(sites, var):
        if "certificates" in site:
            out[site["name"]] = list(site["certificates"] or [])
            continue
        pairs = []
        for key_type in key_types:
            files = tls_files.get(key_type) or {}
            base = f"{TLS_DIR}/{hostname}-{key_type}"
            pairs.append({"cert": files.get("fullchain", base + ".fullchain.pem"),
                          "key": files.get("key", base + ".key")})
        out[site["name"]] = pairs
    return out


def webfleet_site_cert_files(sites, certs, key_types, var="sites"):
    """Every certificate and key file the sites use, each with the variable that names it.

    The ``var`` text is what a validation message shows: ``nginx_sites[0].certificates[1].key``
    for a site's own files, ``nginx_sites[0] (tls_files from the tls role, key type rsa).key``
    for the tls role's.
    """
    out = []
    for index, site in enumerate(_sites(sites, var)):
        own = "certificates" in site
        for pos, pair in enumerate(certs.get(site["name"], [])):
            if own:
                where = f"{var}[{index}].certificates[{pos}]"
            else:
                where = f"{var}[{index}] (tls_files from the tls role, key type {key_types[pos]})"
            out.append({"path": pair.get("cert"), "var": where + ".cert"})
            out.append({"path": pair.get("key"), "var": where + ".key"})
    return out


def webfleet_site_htpasswd(sites, var="sites"):
    """One password file per location with ``auth_users``, named <site>-<location index>."""
    out = []
    for site in _sites(sites, var):
        for index, location in enumerate(site.get("locations") or []):
            users = location.get("auth_users") or []
            if users:
                out.append({"file": f"{site['name']}-{index}", "users": list(users)})
    return out


class FilterModule:
    def filters(self):
        return {
            "webfleet_site_certs": webfleet_site_certs,
            "webfleet_site_cert_files": webfleet_site_cert_files,
            "webfleet_site_htpasswd": webfleet_site_htpasswd,
        }
