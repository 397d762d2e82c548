#!/usr/bin/env bash
# The GPU measurements of the training-speed issue, in one run on a machine with JAX (CUDA) and
# torch but no TensorFlow. Writes JSON to $OUT (default /tmp/edgetl-gpu-check):
#   bench_float32.json, bench_bf16.json  bench/train_throughput.py, batch 256, MobileNetV2-224,
#                                        edgetl's input path against torch's (two loaders)
#   profile_bf16.json                    bench/profile_step.py: where the step time goes
# Keras is installed from carried wheels when it does not import (scripts/gpu_wheels.sh makes
# them): run(command="bash scripts/gpu_check.sh", carry=[".gpu_wheels"], timeout_s=600).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/edgetl-gpu-check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-100}
export PYTHONPATH=$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --find-links .gpu_wheels keras namex optree 2>&1 | tail -3
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import jax, keras, torch; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/versions.txt"
# About 9 minutes in all: give the run 600 s. Each result is written as soon as it exists, so a
# run cut short keeps what it finished. edgetl behind its augmentation is measured in bf16 only.
for precision in float32 bf16; do
  augmented=$([ "$precision" = bf16 ] || echo --skip-augmented)
  timeout 250 "$PYTHON" bench/train_throughput.py --batch-size 256 --image-size 224 --steps "$STEPS" \
    --precision "$precision" $augmented > "$OUT/bench_$precision.json" 2> "$OUT/bench_$precision.log"
  echo "bench $precision: exit $?"; cat "$OUT/bench_$precision.json"
done
timeout 90 "$PYTHON" bench/profile_step.py --batch-size 256 --image-size 224 --steps 10 --precision bf16 \
  --trace-dir /tmp/edgetl-trace > "$OUT/profile_bf16.json" 2> "$OUT/profile_bf16.log"
echo "profile: exit $?"; cat "$OUT/profile_bf16.json"
