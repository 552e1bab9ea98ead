#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU: the CUDA tests on the real device (no simulator), the
# backend conformance tests (CuPy / PyTorch CUDA rows included), then the GPU benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c "from numba import cuda; assert cuda.is_available(), 'numba.cuda sees no GPU'; cuda.detect()"
QEMU_ARRAYS_REAL_GPU=1 python -m pytest -q tests/test_cuda.py tests/test_cuda_blocks.py tests/test_backends.py "$@"
python benchmarks/bench_gpu.py
