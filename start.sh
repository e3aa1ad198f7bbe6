#!/usr/bin/env bash
# Serve domainstats on 127.0.0.1:5000 (see --help). Creates .venv and installs on first run.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Reinstall only when requirements.txt changed since the last install.
stamp=".venv/.installed-$(cksum < requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# gevent patches the standard library before anything else is imported.
exec .venv/bin/python -m gevent.monkey app.py "$@"
