#!/usr/bin/env bash
# Writes the Python lock files from pyproject.toml, every package pinned with its hashes:
#   requirements/run.txt   what the app needs (scripts/install.sh, the Dockerfile)
#   requirements/test.txt  that, plus the test and lint tools (scripts/install.sh test, CI)
# Extra arguments go to `uv pip compile`: `bash scripts/lock.sh --upgrade` moves everything to
# the newest allowed versions, `--upgrade-package NAME` only NAME. Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
common=(--generate-hashes --universal --python-version 3.11 --quiet)
"$uv" pip compile pyproject.toml requirements/build.in "${common[@]}" "$@" -o requirements/run.txt
"$uv" pip compile pyproject.toml requirements/build.in --extra test "${common[@]}" "$@" \
  -o requirements/test.txt
echo "lock: requirements/run.txt and requirements/test.txt written"
