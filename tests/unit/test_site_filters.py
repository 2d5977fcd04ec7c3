"""The per-site filters shared by the nginx and apache roles (plugins/filter/sites.py)."""

import pytest
from ansible.errors import AnsibleFilterError

from sites import webfleet_site_cert_files, webfleet_site_certs, webfleet_site_htpasswd

SITES = [
    {"name": "shop", "server_names": ["shop.example"], "root": "/srv/shop",
     "locations": [{"path": "/"}, {"path": "/admin", "auth_users": ["ops"]},
                   {"path": "/api", "auth_users": []}, {"path": "/ops", "auth_users": ["ops", "sre"]}]},
    {"name": "api", "server_names": ["api.example"], "upstream": "http://127.0.0.1:8080",
     "certificates": [{"cert": "/etc/ssl/api.crt", "key": "/etc/ssl/api.key"}]},
]
TLS_FILES = {"ecdsa": {"fullchain": "/etc/webfleet/tls/web1-ecdsa.fullchain.pem",
                       "key": "/etc/webfleet/tls/web1-ecdsa.key"}}


def test_certs_own_certificates_win_and_tls_role_files_are_used_per_key_type():
    certs = webfleet_site_certs(SITES, ["ecdsa", "rsa"], TLS_FILES, "web1")
    assert certs["api"] == [{"cert": "/etc/ssl/api.crt", "key": "/etc/ssl/api.key"}]
    assert certs["shop"] == [
        {"cert": "/etc/webfleet/tls/web1-ecdsa.fullchain.pem", "key": "/etc/webfleet/tls/web1-ecdsa.key"},
        # rsa is not in tls_files (the tls role did not run in this play): the standard paths.
        {"cert": "/etc/webfleet/tls/web1-rsa.fullchain.pem", "key": "/etc/webfleet/tls/web1-rsa.key"},
    ]


def test_cert_files_name_the_variable_behind_each_file():
    certs = webfleet_site_certs(SITES, ["ecdsa"], TLS_FILES, "web1")
    files = webfleet_site_cert_files(SITES, certs, ["ecdsa"], "nginx_sites")
    assert files == [
        {"path": "/etc/webfleet/tls/web1-ecdsa.fullchain.pem",
         "var": "nginx_sites[0] (tls_files from the tls role, key type ecdsa).cert"},
        {"path": "/etc/webfleet/tls/web1-ecdsa.key",
         "var": "nginx_sites[0] (tls_files from the tls role, key type ecdsa).key"},
        {"path": "/etc/ssl/api.crt", "var": "nginx_sites[1].certificates[0].cert"},
        {"path": "/etc/ssl/api.key", "var": "nginx_sites[1].certificates[0].key"},
    ]


def test_htpasswd_one_file_per_location_with_users_named_by_location_index():
    assert webfleet_site_htpasswd(SITES) == [
        {"file": "shop-1", "users": ["ops"]},
        {"file": "shop-3", "users": ["ops", "sre"]},
    ]


@pytest.mark.parametrize("bad, message", [
    ("shop", "apache_sites: must be a list of sites"),
    ({"name": "shop"}, "apache_sites: must be a list of sites"),
    ([{"server_names": ["x"]}], r"apache_sites\[0\]: a site must be a dict with a name"),
])
def test_a_malformed_site_list_names_the_variable(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        webfleet_site_htpasswd(bad, "apache_sites")
