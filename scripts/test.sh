#!/usr/bin/env bash
# make test: yamllint, ansible-lint (production profile), pytest unit tests, then every Molecule
# scenario (or the ones named: scripts/test.sh base nginx). Ends with pytest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_VAULT_IDENTITY_LIST="${ANSIBLE_VAULT_IDENTITY_LIST:-lab@$PWD/inventories/lab/vault-pass.txt}"
start=$(date +%s)

echo "=== yamllint"
yamllint -s .
echo "=== ansible-lint (production profile)"
ansible-lint --profile production --strict -q
echo "=== container engine and base images"
scripts/engine.sh
images/build.sh

export WEBFLEET_SCENARIOS="${*:-}"
echo "=== pytest: unit tests and Molecule scenarios (${WEBFLEET_SCENARIOS:-all})"
echo "=== lint and images took $(( $(date +%s) - start ))s"
# --durations: the slowest steps, for keeping the run inside CI's 90 minutes.
exec pytest -p no:cacheprovider -rA -v -s --durations=20 tests/unit tests/test_scenarios.py
