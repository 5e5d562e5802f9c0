#!/usr/bin/env bash
# Create .venv (if missing) and install everything the app needs. Idempotent: a second run is quick.
# The first run on a machine compiles llama.cpp for a portable x86-64 level (several minutes on
# 2 cores; see scripts/portable_llama.py), then checks that both embedded models answer a token.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned to the CPU build, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# llama-cpp-python from our own portable wheel, before requirements.txt finds it already satisfied.
.venv/bin/python scripts/portable_llama.py
.venv/bin/python -m pip install --quiet -r requirements.txt "$@"
.venv/bin/python -m pip install --quiet --no-deps -e .
# One token through each embedded model, each in a subprocess: a build this CPU cannot run is
# caught here, with its cause and the fix, not by the first visitor.
if ! .venv/bin/python -m routellm_demo.llm.doctor; then
  echo "setup: the embedded models cannot run on this machine (see the line above)." >&2
  echo "setup: the app still works with remote endpoints: see 'Configuration' in README.md." >&2
  exit 1
fi
