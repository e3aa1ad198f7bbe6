#!/usr/bin/env bash
# The access-log monitor (see --help). Creates .venv and installs on first run.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
(cd "$root" && scripts/ensure_venv.sh requirements.txt)
PYTHONPATH="$root" exec "$root/.venv/bin/python" -m sources.monitor "$@"
