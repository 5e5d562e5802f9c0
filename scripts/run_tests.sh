#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, as CI does.
# Browser tests use Debian's Chromium (never a downloaded browser), and the PostgreSQL store's tests
# Debian's PostgreSQL server (tests/pg_server.py starts a throwaway cluster of it, as the postgres user);
# each is installed here when missing and we may (root, or passwordless sudo). Without them those
# tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh -r requirements-dev.txt
MISSING=""
[ -x /usr/bin/chromium ] || MISSING="chromium"
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || MISSING="$MISSING postgresql"
if [ -n "$MISSING" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  # shellcheck disable=SC2086 (one word per package)
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq $MISSING >/dev/null) \
    || echo "note: could not install$MISSING; browser or PostgreSQL tests will be skipped" >&2
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
