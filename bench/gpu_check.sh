#!/usr/bin/env bash
# The GPU check, in one run (about 8 minutes at most): build the CUDA library, run the CUDA
# conformance tests, then time µs per step against cuDNN — the timing runs whatever the tests
# did. Results under OUT_DIR: info.txt, tests.txt and tests.xml (JUnit), gpu-speed.json and
# gpu-speed.md. Exits with the tests' status (or the timing's, when the tests passed).
# Written for a GPU machine with no network that has Python, torch with CUDA, numba, CMake and
# nvcc but not cffi or pycparser: those come from the wheels in bench/wheels/.
#
#   bash bench/gpu_check.sh [OUT_DIR]        (default OUT_DIR: gpu-report)
set -uo pipefail  # no -e: a failing test must not skip the speed table
cd "$(dirname "$0")/.."
OUT=${1:-gpu-report}
mkdir -p "$OUT"
PY=${PYTHON:-python3}

# cffi and pycparser from the wheels beside this script, when the machine lacks them.
"$PY" -c "import cffi, pycparser" 2>/dev/null ||
  "$PY" -m pip install --no-index --no-deps bench/wheels/*.whl

# Build (nothing else can run without it). With scikit-build-core present: an editable install
# without build isolation; else CMake directly, with the libraries installed into a folder on
# PYTHONPATH (the loader looks in every sys.path entry's fastrnn/_native).
ARCH=$("$PY" -c "import torch; c = torch.cuda.get_device_capability(); print(f'{c[0]}{c[1]}')") ||
  { echo "gpu_check: torch sees no CUDA device"; exit 2; }
echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown), sm_$ARCH"
if "$PY" -c "import scikit_build_core" 2>/dev/null; then
  FASTRNN_CUDA=ON CMAKE_ARGS="-DFASTRNN_CUDA_ARCHITECTURES=$ARCH" \
    "$PY" -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3
  BUILD=${PIPESTATUS[0]}
else
  cmake -S . -B build/gpu -DFASTRNN_CUDA=ON -DFASTRNN_CUDA_ARCHITECTURES="$ARCH" >/dev/null &&
    cmake --build build/gpu -j "$(nproc)" &&
    cmake --install build/gpu --prefix build/gpu/install >/dev/null
  BUILD=$?
  export PYTHONPATH="$PWD:$PWD/build/gpu/install${PYTHONPATH:+:$PYTHONPATH}"
fi
[ "$BUILD" -eq 0 ] || { echo "gpu_check: the build failed ($BUILD)"; exit "$BUILD"; }
"$PY" -m fastrnn.cli info | tee "$OUT/info.txt"

echo "== CUDA tests (float64 reference; float32 against cuDNN's own error, TF32 off)"
"$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/tests.xml" \
  tests/test_cuda.py tests/test_cuda_harness.py 2>&1 | tee "$OUT/tests.txt"
TESTS=${PIPESTATUS[0]}

echo "== µs per step against cuDNN (float32, CUDA events)"
"$PY" bench/gpu_speed.py --out "$OUT" 2>&1 | tee "$OUT/gpu-speed.txt"
SPEED=${PIPESTATUS[0]}

echo "== tests: exit $TESTS; timing: exit $SPEED; results in $OUT/"
[ "$TESTS" -ne 0 ] && exit "$TESTS"
exit "$SPEED"
