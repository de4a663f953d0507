#!/usr/bin/env bash
# The test command: set up .venv (and, where we may, Debian's chromium for the browser test and graphviz
# for PNG/SVG drawing), then lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's$missing for the browser and drawing tests..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "warning:$missing could not be installed; the tests that need it will be skipped" >&2
fi
.venv/bin/ruff check apipeline tests
.venv/bin/ruff format --check apipeline
.venv/bin/mypy apipeline
.venv/bin/lint-imports .importlinter
.venv/bin/mkdocs build --strict --quiet -f mkdocs.yml
.venv/bin/python -m pytest -q "$@"
