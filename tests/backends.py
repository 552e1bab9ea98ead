"""The array libraries the suite runs over: one :class:`Backend` enum, conversions both ways, and
the reason a row is skipped (the ``backend`` fixture of tests/conftest.py uses it).

Rows: NumPy, read-only NumPy, array-api-strict, PyTorch CPU, JAX CPU, Dask (when installed),
the CUDA simulator (numba device arrays, when ``NUMBA_ENABLE_CUDASIM=1``: inside the simulator
subprocess of tests/routes/test_cuda*.py), CuPy and PyTorch CUDA (when a GPU is present).
"""

from __future__ import annotations

import enum
import importlib.util
import os

import ml_dtypes
import numpy as np

from qemu_arrays.dispatch import CAPABILITIES, Route


class Backend(enum.Enum):
    NUMPY = "numpy"
    NUMPY_READONLY = "numpy-readonly"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH_CPU = "torch-cpu"
    JAX_CPU = "jax-cpu"
    DASK = "dask"
    CUDA_SIM = "cuda-sim"
    CUPY = "cupy"
    TORCH_CUDA = "torch-cuda"


ROUTE = {
    Backend.NUMPY: Route.NUMPY,
    Backend.NUMPY_READONLY: Route.NUMPY,
    Backend.ARRAY_API_STRICT: Route.GENERIC,
    Backend.TORCH_CPU: Route.TORCH_CPU,
    Backend.JAX_CPU: Route.GENERIC,
    Backend.DASK: Route.DASK,
    Backend.CUDA_SIM: Route.CUDA,
    Backend.CUPY: Route.CUDA,
    Backend.TORCH_CUDA: Route.CUDA,
}


def block_route(b: Backend) -> Route:
    """The route block formats take on ``b`` (the same as element formats: JAX and array-API
    arrays take the traceable generic route; only their decode goes through the host)."""
    return ROUTE[b]


def capability(b: Backend, block: bool = False):
    """What the route of ``b`` can compute (dispatch.CAPABILITIES)."""
    return CAPABILITIES[block_route(b) if block else ROUTE[b]]


def skip_reason(b: Backend) -> str | None:
    """Why ``b`` cannot run here, or None."""
    mod = {
        Backend.ARRAY_API_STRICT: "array_api_strict",
        Backend.TORCH_CPU: "torch",
        Backend.JAX_CPU: "jax",
        Backend.DASK: "dask",
        Backend.CUPY: "cupy",
        Backend.TORCH_CUDA: "torch",
    }.get(b)
    if mod and importlib.util.find_spec(mod) is None:
        return f"{mod} is not installed"
    if b is Backend.CUDA_SIM and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return (
            "the CUDA simulator runs only where NUMBA_ENABLE_CUDASIM=1 is set before numba.cuda "
            "is imported (the subprocess of tests/routes/test_cuda*.py)"
        )
    if b is Backend.TORCH_CUDA:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU visible to PyTorch"
    if b is Backend.CUPY:
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001 - any CUDA failure means no usable device
            return f"CuPy has no usable CUDA device ({type(e).__name__})"
    return None


def supports(b: Backend, dtype) -> bool:
    """Whether ``b`` has arrays of ``dtype`` (in this configuration)."""
    dtype = np.dtype(dtype)
    if b is Backend.ARRAY_API_STRICT:
        return dtype in (np.float32, np.float64) or dtype.kind in "iu"
    if b is Backend.JAX_CPU and dtype in (np.float64, np.int64, np.uint64):
        import jax

        return bool(jax.config.read("jax_enable_x64"))
    return True


def to_backend(b: Backend, x: np.ndarray, chunks=None):
    """A copy of NumPy array ``x`` in the library of ``b``."""
    if b is Backend.NUMPY:
        return x
    if b is Backend.NUMPY_READONLY:
        y = np.array(x)
        y.flags.writeable = False
        return y
    if b is Backend.ARRAY_API_STRICT:
        import array_api_strict as xs

        return xs.asarray(x)
    if b in (Backend.TORCH_CPU, Backend.TORCH_CUDA):
        import torch

        dev = "cuda" if b is Backend.TORCH_CUDA else "cpu"
        if x.dtype == np.dtype(ml_dtypes.bfloat16):
            return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16).to(dev)
        return torch.from_numpy(np.array(x)).to(dev)
    if b is Backend.JAX_CPU:
        import jax

        return jax.device_put(x, jax.devices("cpu")[0])
    if b is Backend.DASK:
        import dask.array as da

        return da.from_array(x, chunks=chunks or max(1, x.size // 3 + 1))
    if b is Backend.CUDA_SIM:
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(x))
    if b is Backend.CUPY:
        import cupy

        return cupy.asarray(x)
    raise AssertionError(b)


def to_numpy(b: Backend, y) -> np.ndarray:
    """A NumPy copy of ``y`` (an array of the library of ``b``)."""
    if b in (Backend.NUMPY, Backend.NUMPY_READONLY):
        return np.asarray(y)
    if b is Backend.ARRAY_API_STRICT:
        return np.from_dlpack(y)
    if b in (Backend.TORCH_CPU, Backend.TORCH_CUDA):
        import torch

        y = y.cpu()
        if y.dtype == torch.bfloat16:
            return y.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return y.numpy()
    if b is Backend.DASK:
        return np.asarray(y.compute())
    if b is Backend.CUPY:
        return y.get()
    if b is Backend.CUDA_SIM:
        return y.copy_to_host()
    return np.asarray(y)
