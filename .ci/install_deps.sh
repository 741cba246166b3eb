#!/usr/bin/env bash
# Install every dependency CI needs into the active virtualenv. $1: a cache folder kept between runs
# (built wheels live there so that slow source builds happen once per machine).
set -euo pipefail
CACHE="${1:?usage: install_deps.sh CACHE_DIR}"
quiet() { grep -v "is ignored: it is neither" || true; }

python -m pip install -q --upgrade "pip>=24" 2>&1 | quiet
# Pinned torch: the only pair whose torchvision imports on these machines (open_clip needs it).
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | quiet

# mmsegmentation 1.2.2 needs mmcv 2.1.0 with its compiled ops, and PyPI has no mmcv 2.1.0 wheel for this
# torch: build it from the sdist once and cache the wheel, keyed by mmcv, torch (C++ ABI) and python.
MMCV=2.1.0
TORCH_TAG="$(python -c 'import torch; print(torch.__version__.replace("+", "_"))')"
PY_TAG="$(python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
MMCV_DIR="$CACHE/wheels/mmcv-$MMCV-torch$TORCH_TAG-$PY_TAG-cpu"
if ! compgen -G "$MMCV_DIR/mmcv-$MMCV-*.whl" >/dev/null; then
  echo "building mmcv $MMCV from source for torch $TORCH_TAG / $PY_TAG: this takes about 13 min on 2 idle cores" \
    "(once per machine; cached in $MMCV_DIR)"
  START=$SECONDS
  BUILD="$(mktemp -d)"
  python -m pip install -q "setuptools==80.9.0" ninja wheel 2>&1 | quiet
  # No build isolation, even to read the sdist's metadata: its setup.py imports torch and pkg_resources.
  python -m pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV" -d "$BUILD" 2>&1 | quiet
  tar -xzf "$BUILD/mmcv-$MMCV.tar.gz" -C "$BUILD"
  # torch 2.14's headers require C++20 (pytorch/pytorch#178150); mmcv 2.1.0's setup.py asks for C++17.
  sed -i "s/'-std=c++17'/'-std=c++20'/g" "$BUILD/mmcv-$MMCV/setup.py"
  # CPU ops only (CUDA_VISIBLE_DEVICES= keeps the cached wheel the same on a machine with a GPU).
  if ! CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" python -m pip wheel \
    --no-build-isolation --no-deps "$BUILD/mmcv-$MMCV" -w "$BUILD/wheel" >"$BUILD/build.log" 2>&1; then
    tail -n 60 "$BUILD/build.log" >&2
    echo "mmcv $MMCV build failed (full log: $BUILD/build.log)" >&2
    exit 1
  fi
  mkdir -p "$CACHE/wheels"
  rm -rf "$MMCV_DIR" "$MMCV_DIR.tmp" && mv "$BUILD/wheel" "$MMCV_DIR.tmp" && mv "$MMCV_DIR.tmp" "$MMCV_DIR"
  rm -rf "$BUILD"
  echo "mmcv $MMCV built in $((SECONDS - START)) s"
fi
python -m pip install -q "$MMCV_DIR"/mmcv-"$MMCV"-*.whl 2>&1 | quiet

python -m pip install -q -e ".[dev,docs,clip,ovss,bench,mmseg,examples,hf]" -e examples/ovss 2>&1 | quiet
