#!/usr/bin/env bash
# make lab / make lab-down: the two-DC lab fleet in local containers.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_VAULT_IDENTITY_LIST="${ANSIBLE_VAULT_IDENTITY_LIST:-lab@$PWD/inventories/lab/vault-pass.txt}"
INV=inventories/lab

case "${1:-up}" in
up)
    scripts/engine.sh
    images/build.sh
    start=$(date +%s)
    ansible-playbook -i "$INV" playbooks/lab.yml --tags lab_create
    # The containers answer as soon as systemd is up; wait for that before configuring them.
    for c in $(docker ps --filter label=org.webfleet.lab=1 --format '{{.Names}}'); do
        for _ in $(seq 60); do
            state=$(docker exec "$c" systemctl is-system-running 2>/dev/null || true)
            case "$state" in running|degraded) break ;; esac
            sleep 1
        done
    done
    ansible-playbook -i "$INV" playbooks/site.yml
    echo "lab converged in $(( $(date +%s) - start ))s"
    python3 scripts/lab_endpoints.py
    echo "Credentials: ansible-vault view $INV/group_vars/lab/vault.yml (vault id lab, password in $INV/vault-pass.txt)"
    ;;
down)
    ids=$(docker ps -aq --filter label=org.webfleet.lab=1)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    nets=$(docker network ls -q --filter label=org.webfleet.lab=1)
    [ -z "$nets" ] || docker network rm $nets >/dev/null
    rm -rf .cache/facts
    echo "lab removed"
    ;;
*)
    echo "usage: $0 up|down" >&2; exit 2 ;;
esac
