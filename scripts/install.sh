#!/usr/bin/env bash
# Installs safepref into .venv from the registries: front-end files (npm, pinned by
# package-lock.json), then the Python package. Pass "test" to add the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
python=${PYTHON:-python3}

if ! command -v npm >/dev/null 2>&1; then
  echo "install: npm is required (Node.js 18+) to fetch the pinned front-end files" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
mkdir -p static/vendor
cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
# axe-core checks the pages' accessibility in the browser tests only: never served.
if [ "$mode" = test ]; then
  mkdir -p tests/browser/vendor
  cp node_modules/axe-core/axe.min.js tests/browser/vendor/axe.min.js
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$mode" = test ]; then
  # Editable, so that the tests exercise this checkout.
  .venv/bin/python -m pip install --quiet -e ".[test]"
else
  .venv/bin/python -m pip install --quiet .
fi
