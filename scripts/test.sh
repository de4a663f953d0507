#!/usr/bin/env bash
# The test command: set up .venv, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check apipeline tests
.venv/bin/ruff format --check apipeline
.venv/bin/mypy apipeline
.venv/bin/python -m pytest -q "$@"
