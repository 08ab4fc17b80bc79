#!/usr/bin/env bash
# Builds the CUDA esr-ea binary on a machine with no CUDA toolkit and no GPU,
# then strips and gzips it into dist/esr-ea-cuda.gz of the current checkout
# (what travels to a GPU machine; see scripts/gpu-check.sh).
#
# Where a CUDA toolkit is installed none of this is needed:
#   cargo build --release --features cuda
#
# Target: H100/H200 (sm_90a) with driver 580 (CUDA 13.0). The toolkit comes
# from PyPI wheels into $CUDA_TOOLKIT (default ./.cuda-toolkit, ~1.2 GB,
# git-ignored); a stand-in libcuda.so.1 is made for linking only (every call
# answers "no device"); the real driver library is used at run time.
# Recipe: ../shared/tools/cuda/ (this script is that recipe, self-contained,
# with `cargo metadata --features cuda` so cudarc is found when `cuda` is not
# a default feature).
#
# First build ~16+ min on 2 cores (nvcc on candle-kernels); later builds with
# the same CARGO_TARGET_DIR and CUDA_TOOLKIT take seconds to minutes (the
# kernels' build scripts rerun when the toolkit path changes, so keep it).
#
# Features: `cudnn` (CUDA + cuDNN convolutions; the binary then needs
# libcudnn.so.9 at run time) unless FEATURES=cuda.
#
# Usage: [CARGO_TARGET_DIR=DIR] [CUDA_TOOLKIT=DIR] [FEATURES=cuda] bash scripts/build-cuda-dist.sh [cargo build flags]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=${CUDA_TOOLKIT:-$ROOT/.cuda-toolkit}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CU=$PREFIX/nvidia/cu13
start=$(date +%s)

if [ ! -x "$CU/bin/nvcc" ]; then
  # 13.0.x on purpose: driver 580 JITs PTX ISA <= 9.0 (nvcc 13.0); cudarc 0.19 knows CUDA <= 13.4 only.
  python3 -m pip install -q --no-deps --no-compile --target "$PREFIX" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
fi
# The wheels ship only versioned sonames; the linker wants the plain names.
for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "$CU/lib/lib$l.so"; done
ln -sf libcurand.so.10 "$CU/lib/libcurand.so"

# Link-time stand-in for the driver's libcuda.so.1 (not on PyPI): every entry
# point cudarc loads returns CUDA_ERROR_NO_DEVICE.
if [ ! -f "$CU/lib/stubs/libcuda.so" ]; then
  mkdir -p "$CU/lib/stubs"
  cargo fetch -q
  CUDARC=$(cargo metadata -q --format-version 1 --features cuda | python3 -c 'import json,sys,os; print(os.path.dirname(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc")))')
  { echo 'static const char *m = "CUDA_ERROR_NO_DEVICE (stub libcuda: no NVIDIA driver here)";'
    echo 'int cuGetErrorString(int e, const char **p){ if(p) *p = m; return 0; }'
    echo 'int cuGetErrorName(int e, const char **p){ if(p) *p = "CUDA_ERROR_NO_DEVICE"; return 0; }'
    grep -oE 'load::<_F>\("cu[A-Za-z0-9_]+"\)' "$CUDARC/src/driver/sys/mod.rs" | sed -E 's/.*"(cu[^"]+)".*/\1/' | sort -u \
      | grep -vxE 'cuGetErrorString|cuGetErrorName' | sed 's/.*/int &(void){ return 100; }/'
  } > "$PREFIX/libcuda_stub.c"
  gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$PREFIX/libcuda_stub.c"
fi

# Link-time stand-in for cuDNN 9 (libcudnn.so.9, ~1 GB of wheels we do not
# need here): every cuDNN function cudarc declares, answering
# CUDNN_STATUS_NOT_INITIALIZED. At run time the real library is loaded from
# LD_LIBRARY_PATH (PyTorch's nvidia-cudnn-cu13 package carries it).
if [ ! -f "$CU/lib/stubs/libcudnn.so" ]; then
  mkdir -p "$CU/lib/stubs"
  cargo fetch -q
  CUDARC=$(cargo metadata -q --format-version 1 --features cudnn | python3 -c 'import json,sys,os; print(os.path.dirname(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc")))')
  { echo 'unsigned long cudnnGetVersion(void){ return 0; }'
    grep -oE 'fn cudnn[A-Za-z0-9_]+\(' "$CUDARC/src/cudnn/sys/mod.rs" | sed -E 's/fn (cudnn[A-Za-z0-9_]+)\(/\1/' | sort -u \
      | grep -vxE 'cudnnGetVersion' | sed 's/.*/int &(void){ return 1; }/'
  } > "$PREFIX/libcudnn_stub.c"
  gcc -shared -fPIC -O1 -Wl,-soname,libcudnn.so.9 -o "$CU/lib/stubs/libcudnn.so" "$PREFIX/libcudnn_stub.c"
fi

export PATH="$CU/bin:$PATH"     # nvcc: cudaforge (candle-kernels) and cudarc both run it
export CUDA_HOME="$CU"          # cudarc's link search: $CUDA_HOME/lib and $CUDA_HOME/lib/stubs
export CUDA_COMPUTE_CAP=90      # else cudaforge calls nvidia-smi; sm_90a: H100/H200 only
export CUDARC_CUDA_VERSION=13000
export CARGO_TARGET_DIR=$TARGET
cargo build --release --features "${FEATURES:-cudnn}" --bin esr-ea "$@"

mkdir -p dist
strip -o dist/esr-ea-cuda "$TARGET/release/esr-ea"
gzip -9 -n -f dist/esr-ea-cuda
# What the binary was built from, for the GPU check's log.
{
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), features ${FEATURES:-cudnn}, CUDA 13.0 (nvcc $("$CU/bin/nvcc" --version | grep -o 'V[0-9][0-9.]*')), sm_90a"
  echo "sha256 $(sha256sum dist/esr-ea-cuda.gz | cut -d' ' -f1)"
} >dist/esr-ea-cuda.txt
echo "dist/esr-ea-cuda.gz: $(du -h dist/esr-ea-cuda.gz | cut -f1) gzipped," \
  "$(gzip -l dist/esr-ea-cuda.gz | awk 'NR==2{printf "%.1f MB", $2/1e6}') stripped;" \
  "built in $(( $(date +%s) - start )) s"
