#!/usr/bin/env bash
# Install what the tests need, then run the linters and the whole suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_venv.sh requirements-dev.txt
# Real programs the tests use: redis-server (the Redis backend), curl (send_domains_stats.sh)
# and Debian's chromium (the dashboard test). A test whose program cannot be installed skips,
# saying why.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  (apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null) ||
    echo "test.sh: could not install ${missing[*]}; the tests that need them will skip" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
start=$(date +%s)
.venv/bin/python -m pytest "$@"
echo "suite took $(($(date +%s) - start)) s"
