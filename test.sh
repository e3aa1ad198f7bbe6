#!/usr/bin/env bash
# Install what the tests need, then run the linters and the whole suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_venv.sh requirements-dev.txt
# curl is what send_domains_stats.sh posts with.
if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
start=$(date +%s)
.venv/bin/python -m pytest "$@"
echo "suite took $(($(date +%s) - start)) s"
