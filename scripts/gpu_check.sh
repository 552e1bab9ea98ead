#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU: the CUDA tests on the real device (no simulator), the
# backend conformance tests (CuPy / PyTorch CUDA rows included), then the GPU benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
# the folders formats/ and cuda_kernels/ are installed as qemu_arrays.formats/.cuda_kernels:
# an editable install (no network needed: no build isolation, no dependencies) maps them
python -c "import qemu_arrays.formats" 2>/dev/null \
    || python -m pip install -q --no-build-isolation --no-deps -e .
unset NUMBA_ENABLE_CUDASIM
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c "from numba import cuda; assert cuda.is_available(), 'numba.cuda sees no GPU'; cuda.detect()"
QEMU_ARRAYS_REAL_GPU=1 python -m pytest -q tests/routes/test_cuda.py tests/routes/test_cuda_blocks.py tests/routes/test_cuda_matmul.py tests/routes/test_backends.py "$@"
python benchmarks/bench_gpu.py
