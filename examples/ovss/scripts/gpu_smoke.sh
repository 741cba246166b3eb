#!/usr/bin/env bash
# GPU smoke run (< 8 min on an H200): real ViT-B/16 architecture, random weights, synthetic 384^2 data,
# 300 bf16 steps each of distill=none and distill=infoclip; prints it/s, peak memory, the overhead ratio.
set -euo pipefail
cd "$(dirname "$0")/../../.."
python examples/ovss/scripts/gpu_smoke.py --iters "${ITERS:-300}" --batch "${BATCH:-4}" --out "${OUT:-output/gpu_smoke}"
