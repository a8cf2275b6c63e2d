#!/usr/bin/env bash
# Install, then lint (ruff) and run the whole test suite (offline; the slow tests use the embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${PROBEKIT_VENV:-.venv}"
"$VENV/bin/python" -m ruff check probekit training analyses tests bench
"$VENV/bin/python" -m pytest -q "$@"
