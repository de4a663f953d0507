#!/usr/bin/env bash
# The test command: set up .venv (and, where we may, Debian's chromium for the browser test), then
# lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: chromium could not be installed; the browser test will be skipped" >&2
fi
.venv/bin/ruff check apipeline tests
.venv/bin/ruff format --check apipeline
.venv/bin/mypy apipeline
.venv/bin/python -m pytest -q "$@"
