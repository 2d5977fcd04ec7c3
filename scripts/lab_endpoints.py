#!/usr/bin/env python3
"""Print what runs where in the lab and how to reach it, from the lab inventory."""

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PORTS = {  # container port: (what, scheme)
    "80": ("http, redirects to https", "http"),
    "443": ("https", "https"),
    "8404": ("haproxy stats + /metrics (basic auth)", "https"),
    "9090": ("prometheus (basic auth)", "https"),
    "9093": ("alertmanager (basic auth)", "https"),
}
SKIP_GROUPS = {"all", "lab", "ungrouped", "web"}

inv = json.loads(subprocess.run(
    [os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i",
     os.path.join(REPO, "inventories", "lab"), "--list"],
    capture_output=True, text=True, check=True, cwd=REPO,
    env=dict(os.environ, ANSIBLE_VAULT_IDENTITY_LIST=os.environ.get(
        "ANSIBLE_VAULT_IDENTITY_LIST", "lab@" + os.path.join(REPO, "inventories/lab/vault-pass.txt"))),
).stdout)
hostvars = inv["_meta"]["hostvars"]
member_of = {}
for group, data in inv.items():
    for host in data.get("hosts", []) if isinstance(data, dict) else []:
        member_of.setdefault(host, []).append(group)

print(f"{'host':<11} {'dc':<5} {'role':<11} {'container':<14} {'image':<19} addresses")
for host in sorted(hostvars):
    hv = hostvars[host]
    roles = ",".join(sorted(g for g in member_of.get(host, [])
                            if g not in SKIP_GROUPS and not g.startswith("dc_")))
    print(f"{host:<11} {hv.get('webfleet_dc', ''):<5} {roles:<11} wf-{host:<11} "
          f"{hv.get('lab_image', ''):<19} {' '.join(hv.get('lab_ips', {}).values())}")
print("\nEndpoints (published on 127.0.0.1 only):")
for host in sorted(hostvars):
    for mapping in hostvars[host].get("lab_publish", []):
        address, host_port, port = mapping.split(":")
        what, scheme = PORTS.get(port, (f"port {port}", "tcp"))
        print(f"  {scheme}://{address}:{host_port}/".ljust(32) + f"{host}: {what}")
shop = "shop.lab.webfleet.test"
print(f"\nThe shop answers to {shop}: curl --cacert .cache/pki/lab/ca.crt "
      f"--resolve {shop}:18443:127.0.0.1 https://{shop}:18443/")
