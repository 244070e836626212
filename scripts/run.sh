#!/usr/bin/env bash
# The first command of the README: install, create the demo database if there is none, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ -z "${SAFEPREF_DATABASE_URL:-}" ] && [ ! -f safepref.db ]; then
  .venv/bin/safepref demo
else
  echo "using the existing database (run .venv/bin/safepref demo for a fresh demo)"
fi
exec .venv/bin/safepref serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
