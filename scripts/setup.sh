#!/usr/bin/env bash
# Install edgetl with its whole toolchain into ./.venv (Python 3.11+). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[full,test,docs]"
# tensorflow-hub needs tf_keras; installed normally that pulls the full 572 MB `tensorflow` wheel
# beside tensorflow-cpu. Neither needs anything we do not already have.
.venv/bin/python -m pip install -q --no-deps "tensorflow-hub>=0.16,<0.17" "tf-keras>=2.21,<2.22"
echo "edgetl installed in $(pwd)/.venv"
