#!/usr/bin/env bash
# Install every dependency CI needs into the active virtualenv. $1: a cache folder kept between runs
# (built wheels live there so that slow source builds happen once per machine).
set -euo pipefail
CACHE="${1:?usage: install_deps.sh CACHE_DIR}"
quiet() { grep -v "is ignored: it is neither" || true; }

python -m pip install -q --upgrade "pip>=24" 2>&1 | quiet
# Pinned torch: the only pair whose torchvision imports on these machines (open_clip needs it).
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | quiet
python -m pip install -q -e ".[dev,docs,clip,ovss,bench]" 2>&1 | quiet
