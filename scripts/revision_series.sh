#!/usr/bin/env bash
# A revision series probed end to end on 2 ranks at every layer: the quickstart's checkpoints (θ0 and 3 epochs of SFT
# on 64 P17 facts) registered as revisions epoch-000..epoch-003 of a repo `local/quickstart` in a Hugging Face
# cache of their own (runs/quickstart/hub, the layout huggingface_hub writes: refs/<revision> names a snapshot), then
# probed as a Pythia-style series with `--revisions` under torchrun, then drawn. With a real revision series
# already in your cache (EleutherAI/pythia-160m, say) only the last two commands apply.
#
#   bash scripts/revision_series.sh          # about 10 minutes on 2 CPU cores (the quickstart's training first)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=runs/quickstart
[ -d "$OUT/run/checkpoints/epoch-003" ] || "$PY" -m analyses.quickstart --out "$OUT"
export HF_HUB_CACHE="$PWD/$OUT/hub"
"$PY" - "$OUT" <<'EOF'
import shutil, sys
from pathlib import Path

out = Path(sys.argv[1])
repo = out / "hub" / "models--local--quickstart"
for i, ckpt in enumerate(sorted((out / "run" / "checkpoints").glob("epoch-*"))):
    commit = f"{i:040x}"  # a snapshot folder named like a commit hash
    shutil.copytree(ckpt, repo / "snapshots" / commit, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ckpt.name).write_text(commit)
EOF
"$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m probekit probe \
    --base local/quickstart@epoch-000 --revisions epoch-001 epoch-002 epoch-003 \
    --held "$OUT/held.jsonl" --unknown "$OUT/train.jsonl" --layers all --out "$OUT/revision-probes"
"$PY" -m probekit plot "$OUT/revision-probes" --metric RD --heatmap --out figures/revision_series_rd
