#!/usr/bin/env bash
# The second command of the README: install everything, then run the whole test suite on
# SQLite and PostgreSQL, with the browser tests in headless Chromium.
# Uses SAFEPREF_TEST_POSTGRES_URL when set (CI starts its own server); otherwise starts a
# throwaway PostgreSQL from the machine's binaries for the duration of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test: chromium is missing (apt-get install chromium chromium-driver)" >&2
  fi
fi

pgdir=""
sitedir=""
cleanup() {
  if [ -n "$sitedir" ]; then
    rm -rf "$sitedir"
  fi
  if [ -n "$pgdir" ]; then
    bash scripts/pg.sh stop "$pgdir"
    rm -rf "$pgdir"
  fi
}
trap cleanup EXIT
if [ -z "${SAFEPREF_TEST_POSTGRES_URL:-}" ] && command -v pg_ctl >/dev/null 2>&1; then
  pgdir=$(mktemp -d /tmp/safepref-pg.XXXXXX)
  SAFEPREF_TEST_POSTGRES_URL=$(bash scripts/pg.sh start "$pgdir")
  export SAFEPREF_TEST_POSTGRES_URL
fi

# Style and types first: ruff (lint + format) and mypy on app/ must be clean.
.venv/bin/ruff check app tests bench migrations
.venv/bin/ruff format --check app tests bench migrations
.venv/bin/mypy app
# The import layers (scripts/import_layers.py): nothing imports back up, no cycles.
.venv/bin/python scripts/import_layers.py --check

# The documentation site (docs/, mkdocs.yml): a broken link or anchor, or a page left out of the
# navigation, fails the build. Not --quiet: it would hide the warnings that strict mode counts.
sitedir=$(mktemp -d /tmp/safepref-site.XXXXXX)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$sitedir"

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
if [ "$status" = 5 ]; then
  echo "test: pytest collected no tests" >&2
fi
exit "$status"
