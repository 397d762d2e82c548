#!/usr/bin/env bash
# Download the wheels that scripts/gpu_check.sh needs beside the GPU machine's own packages into
# ./.gpu_wheels (ignored by git; carry it to the machine). That machine (Python 3.12, x86-64)
# has JAX with CUDA, torch, torchvision, numpy, Pillow, h5py, rich, absl-py and ml-dtypes, but no
# Keras and not Keras' small dependencies namex and optree. About 3 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu_wheels "keras==3.15.1" "namex==0.1.0" "optree==0.20.0"
ls -l .gpu_wheels
