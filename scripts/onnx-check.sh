#!/usr/bin/env bash
# Checks esr-ea's ONNX export with runtimes nobody here wrote (called by .ci/run
# after `cargo test`):
#   1. the test matrix of tests/units/onnx_export.rs (S/G/C-mixed networks, x2/x3/x4,
#      with and without biases, even and odd sizes, batch 2) passes
#      onnx.checker.check_model(full_check=True) and onnxruntime matches candle
#      within 1e-4;
#   2. a held-out photo (coffee.png, not a training image; the full photo from
#      ../shared/data/images when present, else assets/val's crop; cut to an
#      odd size) upscaled by
#      `esr-ea upscale` and by onnxruntime with `esr-ea onnx`'s file differs by
#      at most 1 grey level.
# Setup on first use: scripts/.onnx-venv with onnx, onnxruntime, numpy and
# pillow from PyPI (git-ignored; set ONNX_VENV to use another; `--setup` makes
# only that). Everything it
# writes stays in target/onnx-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ONNX_VENV:-scripts/.onnx-venv}
PY=$VENV/bin/python
if ! "$PY" -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null; then
  echo "onnx-check: setting up $VENV (onnx, onnxruntime, numpy, pillow from PyPI)"
  [[ -x $PY ]] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check onnx onnxruntime numpy pillow
fi
# `--setup`: only the venv (.ci/run makes it while the tests compile).
[[ ${1:-} == --setup ]] && exit 0
WORK=target/onnx-check
rm -rf "$WORK"
mkdir -p "$WORK/cases"

echo "onnx-check: writing the test matrix (tests/units/onnx_export.rs)"
ESR_EA_ONNX_CASES="$PWD/$WORK/cases" cargo test --locked --quiet --test units \
  -- --ignored --exact onnx_export::write_cases_for_onnxruntime >/dev/null

echo "onnx-check: photo model (60 quick training steps)"
# The binary the test build above made (a `cargo build` would compile the
# crate again under the dev profile's other fingerprint).
BIN=target/debug/esr-ea
"$BIN" train --arch S_2_16_16 C_2_16_16 G_2_16_16 --steps 60 --out "$WORK/photo" >/dev/null
PHOTO=../shared/data/images/coffee.png
[[ -f $PHOTO ]] || PHOTO=assets/val/coffee.png
"$PY" -c "
import sys
from PIL import Image
img = Image.open(sys.argv[1]).convert('RGB')
w, h = img.size
img.crop((0, 0, (min(w, 301) - 1) | 1, (min(h, 199) - 1) | 1)).save(sys.argv[2])
" "$PHOTO" "$WORK/photo_lr.png"
"$BIN" upscale --model "$WORK/photo/model.safetensors" "$WORK/photo_lr.png" "$WORK/photo_sr.png" >/dev/null
"$BIN" onnx "$WORK/photo/model.safetensors" "$WORK/photo/model.onnx"

"$PY" scripts/onnx_check.py "$WORK/cases" "$WORK/photo_lr.png" "$WORK/photo_sr.png" "$WORK/photo/model.onnx"
echo "onnx-check: ok"
