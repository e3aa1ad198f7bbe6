#!/usr/bin/env bash
# Serve domainstats on 127.0.0.1:5000 (see --help). Creates .venv and installs on first run.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_venv.sh requirements.txt
# gevent patches the standard library before anything else is imported.
exec .venv/bin/python -m gevent.monkey app.py "$@"
