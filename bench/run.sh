#!/usr/bin/env bash
# The benchmark suite: installs what it needs (wrk and redis-server from Debian), runs every
# benchmark, prints the figures and writes bench/RESULTS.md. A few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure_venv.sh requirements-bench.txt
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec .venv/bin/python -m bench.suite "$@"
