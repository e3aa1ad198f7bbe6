#!/usr/bin/env bash
# Create .venv if missing and install a requirements file into it, again only when it changed.
set -euo pipefail
requirements=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
name=$(basename "$requirements" .txt)
stamp=".venv/.installed-$name-$(cat requirements*.txt | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  rm -f .venv/.installed-"$name"-*
  touch "$stamp"
fi
