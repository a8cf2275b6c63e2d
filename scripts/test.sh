#!/usr/bin/env bash
# Install, then lint (ruff), build the docs (strict) and run the whole test suite (offline; the slow tests use
# the embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${PROBEKIT_VENV:-.venv}"
"$VENV/bin/python" -m ruff check probekit training analyses tests bench
# the documentation, strictly (a broken link, anchor or page fails), into a folder outside the repository; its log
# is shown only on failure (mkdocs -q would hide the warnings that --strict counts)
DOCS_LOG="$(mktemp)"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/python" -m mkdocs build --strict --site-dir "${TMPDIR:-/tmp}/probekit-site" \
  >"$DOCS_LOG" 2>&1 || { cat "$DOCS_LOG"; rm -f "$DOCS_LOG"; exit 1; }
rm -f "$DOCS_LOG"
# a fresh .ci/run took about 6 GB of disk at its peak, install included (bench/RESULTS.md): say so before a full
# disk turns into dozens of unrelated failures
FREE_GB=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 {print int($4 / 1048576)}')
[ "$FREE_GB" -ge 5 ] || echo "warning: ${FREE_GB} GB free under ${TMPDIR:-/tmp}; the tests write a few GB there" >&2
# one worker per core, each computing on one thread (tests/conftest.py), handed one test at a time in the order
# conftest sets (the longest first), so that no worker is left alone with the long ones at the end
"$VENV/bin/python" -m pytest -q -n auto --maxschedchunk 1 "$@"
