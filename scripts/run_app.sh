#!/usr/bin/env bash
# Set up (if needed) and start the Gradio app on the embedded local model pair: no key, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
exec .venv/bin/python app.py "$@"
