#!/usr/bin/env bash
# make bench: benchmarks on the lab (bench/run.py). Replaces a running lab; leaves it down.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
scripts/engine.sh
images/build.sh
exec python bench/run.py "$@"
