#!/usr/bin/env bash
# Create .venv (if missing) and install everything the app needs. Idempotent: a second run is quick.
# First install compiles llama-cpp-python from source (~11 minutes on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned to the CPU build, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -r requirements.txt "$@"
.venv/bin/python -m pip install --quiet --no-deps -e .
