#!/usr/bin/env bash
# Installs safepref into .venv from the registries: front-end files (npm, pinned by
# package-lock.json), then the Python dependencies (pinned with hashes by requirements/*.txt)
# and the package. Pass "test" to add the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
python=${PYTHON:-python3}

if ! command -v npm >/dev/null 2>&1; then
  echo "install: npm is required (Node.js 18+) to fetch the pinned front-end files" >&2
  exit 1
fi
# swagger-ui-dist depends on @scarf/scarf, whose install step reports downloads: not from here.
SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
mkdir -p static/vendor/swagger-ui
cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
# /docs (app/web/api_docs.py): Swagger UI's bundle and stylesheet, nothing else of the package.
cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
  static/vendor/swagger-ui/
# axe-core checks the pages' accessibility in the browser tests only: never served.
if [ "$mode" = test ]; then
  mkdir -p tests/browser/vendor
  cp node_modules/axe-core/axe.min.js tests/browser/vendor/axe.min.js
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Every dependency from the lock file, pinned and checked against its hashes (scripts/lock.sh
# writes it), then the package itself with nothing more.
lock=requirements/run.txt
[ "$mode" = test ] && lock=requirements/test.txt
.venv/bin/python -m pip install --quiet --require-hashes -r "$lock"
if [ "$mode" = test ]; then
  # Editable, so that the tests exercise this checkout.
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
else
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation .
fi
