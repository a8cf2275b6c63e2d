#!/usr/bin/env bash
# Install, then run the whole test suite (offline; the slow tests use the embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${PROBEKIT_VENV:-.venv}/bin/python" -m pytest -q "$@"
