#!/usr/bin/env bash
# One check of the GPU path on one H100/H200 (under 8 minutes): the training bench (baseline SFT, ours SFT, top-k and
# full self-distillation), the probe bench and the SLiCK bench on the Qwen2.5-1.5B config with random weights, bf16;
# their JSON goes under $OUT (default ./out), then an estimate of the paper profile's wall time (bench/estimate.py
# states its assumptions). The evaluation bench needs run directories: give them in $EVAL_RUNS to include it.
#
#   bash bench/gpu_check.sh            # on the GPU
#   bash bench/gpu_check.sh --smoke    # the same on a tiny config on the CPU (a minute or two): CI
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
mkdir -p "$OUT"
if [ "${1:-}" = "--smoke" ]; then
  MODEL="--arch tiny --device cpu"; PRECISION=fp32; DTYPE=float32
  TRAIN="--batch-size 8 --steps 2 --rounds 1"; PROBE="--n 64 --batch-size 16 --rounds 1"; SLICK="--n 4 --runs 1"
else
  MODEL="--arch qwen2.5-1.5b --device cuda"; PRECISION=bf16; DTYPE=bfloat16
  TRAIN="--batch-size 64 --steps 6 --rounds 3"; PROBE="--n 2048 --batch-size 64 --rounds 3"; SLICK="--n 64 --runs 2"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
set -x
$PY bench/train_bench.py $MODEL --precision $PRECISION $TRAIN --out "$OUT/train_bench.json"
$PY bench/probe_bench.py $MODEL --dtype $DTYPE $PROBE --out "$OUT/probe_bench.json"
$PY bench/slick_bench.py $MODEL --dtype $DTYPE $SLICK --modes shared --out "$OUT/slick_bench.json"
if [ -f bench/eval_bench.py ] && [ -n "${EVAL_RUNS:-}" ]; then
  $PY bench/eval_bench.py $EVAL_RUNS --out "$OUT/eval_bench.json"
fi
$PY bench/estimate.py "$OUT"
