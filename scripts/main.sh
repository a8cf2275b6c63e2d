#!/usr/bin/env bash
# Install, then run the main job on the embedded default model: the quick profile of figure 5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${PROBEKIT_VENV:-.venv}/bin/python" -m analyses.fig5 "$@"
