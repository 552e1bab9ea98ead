"""numba-CUDA kernels of qemu_arrays, over the shared scalar cores; loaded on first use.

``import qemu_arrays`` never imports this package. The host side of the CUDA route (array
adapters, launch geometry, cached buffers and constants, argument checks) is
:mod:`qemu_arrays.cuda_route` (element formats) and :mod:`qemu_arrays.cuda_blocks` (MX, NVFP4),
which :mod:`qemu_arrays.dispatch` calls when it sees device memory (``__cuda_array_interface__``:
CuPy arrays, PyTorch CUDA tensors, numba device arrays). This package holds only the kernels and
their device-side steps, and imports nothing of ``qemu_arrays`` (only :mod:`formats`, numba and
NumPy). Importing ``numba.cuda`` and compiling the kernels happen at the first :func:`load`, and
a missing numba-cuda or CUDA driver gives an ``ImportError``/``RuntimeError`` that says what is
missing. Under ``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in numba's CUDA simulator (slow:
for tests on small arrays).

Modules: :mod:`qemu_arrays.cuda_kernels.kernels` (element formats), :mod:`qemu_arrays.cuda_kernels.rne32` (the 32-bit
nearest-even step for float32 input), :mod:`qemu_arrays.cuda_kernels.block_kernels` and
:mod:`qemu_arrays.cuda_kernels.block_io` (MX and NVFP4; their rules are the shared steps of
:mod:`qemu_arrays.formats.block_cores`), :mod:`qemu_arrays.cuda_kernels.matmul` (matmul with a
rounded accumulator, over :mod:`qemu_arrays.formats.accumulate`; host side
:mod:`qemu_arrays.routes.matmul_cuda`).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["available", "load", "simulated"]

_kernels = None


def load():
    """Import numba.cuda and the kernels module, or say clearly why that is impossible."""
    global _kernels
    if _kernels is not None:
        return _kernels
    if not hasattr(np, "row_stack"):
        # numba-cuda <= 0.30 registers an overload of np.row_stack, which NumPy 2.4 removed;
        # the alias lets its CUDA target initialise (drop when numba-cuda no longer needs it)
        setattr(np, "row_stack", np.vstack)  # noqa: B010 - a plain assignment trips NPY201
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - depends on the installation
        msg = (
            "the CUDA route needs numba-cuda (`pip install numba-cuda`, or qemu-arrays[cuda]); "
            f"importing numba.cuda failed: {e}"
        )
        raise ImportError(msg) from e
    if not cuda.is_available():
        msg = (
            "the CUDA route found no usable CUDA driver/GPU (numba.cuda.is_available() is False); "
            "hint: check `nvidia-smi`, or set NUMBA_ENABLE_CUDASIM=1 before importing numba "
            "to run the kernels in the simulator; or move the array to the host"
        )
        raise RuntimeError(msg)
    from qemu_arrays.cuda_kernels import kernels

    _kernels = kernels
    return kernels


def available() -> bool:
    """Whether the CUDA route can run here (numba-cuda importable and a device or simulator)."""
    try:
        load()
    except (ImportError, RuntimeError):
        return False
    return True


def simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
