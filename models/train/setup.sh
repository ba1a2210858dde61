#!/bin/sh
# Creates .venv at the repo root with the pinned training toolchain (models/train/requirements.txt).
# Usage (from anywhere): sh models/train/setup.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install --disable-pip-version-check -q -r models/train/requirements.txt
.venv/bin/python -c "import lightgbm, onnxmltools, onnxruntime, sklearn, xgboost; print('training venv ready:', lightgbm.__version__, onnxmltools.__version__, onnxruntime.__version__, xgboost.__version__)"
