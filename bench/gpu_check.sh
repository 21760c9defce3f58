#!/usr/bin/env bash
# The GPU check, in one run (about 8 minutes at most): build the CUDA library, run the CUDA
# conformance tests against the float64 reference and cuDNN, and print a speed table against
# cuDNN. Written for a GPU machine with no network that has Python, torch with CUDA, numba, CMake
# and nvcc but not cffi or pycparser: those come from the wheels in bench/wheels/.
#
#   bash bench/gpu_check.sh [OUT_DIR]        (default OUT_DIR: gpu-report)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-report}
mkdir -p "$OUT"
PY=${PYTHON:-python3}

# cffi and pycparser from the wheels beside this script, when the machine lacks them.
"$PY" -c "import cffi, pycparser" 2>/dev/null ||
  "$PY" -m pip install --no-index --no-deps bench/wheels/*.whl

# Build. With scikit-build-core present: an editable install without build isolation; else
# CMake directly, with the libraries installed into a folder on PYTHONPATH (the loader looks in
# every sys.path entry's fastrnn/_native).
ARCH=$("$PY" -c "import torch; c = torch.cuda.get_device_capability(); print(f'{c[0]}{c[1]}')")
echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown), sm_$ARCH"
if "$PY" -c "import scikit_build_core" 2>/dev/null; then
  FASTRNN_CUDA=ON CMAKE_ARGS="-DFASTRNN_CUDA_ARCHITECTURES=$ARCH" \
    "$PY" -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3
else
  cmake -S . -B build/gpu -DFASTRNN_CUDA=ON -DFASTRNN_CUDA_ARCHITECTURES="$ARCH" >/dev/null
  cmake --build build/gpu -j "$(nproc)"
  cmake --install build/gpu --prefix build/gpu/install >/dev/null
  export PYTHONPATH="$PWD:$PWD/build/gpu/install${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -m fastrnn.cli info | tee "$OUT/info.txt"

echo "== CUDA conformance tests (reference and cuDNN, TF32 off)"
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/tests.txt"

echo "== speed against cuDNN (float32)"
"$PY" -m fastrnn.cli bench --device cuda --cells lstm,gru --batch 1,16,64 --hidden 128,256,512 \
  --seq-len 100 --rounds 5 --out "$OUT" | tee -a "$OUT/tests.txt"
sed -n '/^## /,$p' "$OUT/REPORT.md"
