"""matmul/dot of JAX and array-API arrays, and of CUDA device arrays in the cases the CUDA
kernels do not cover (:mod:`qemu_arrays.routes.matmul_cuda`: the hardware models): a copy to NumPy, the numba CPU route (:mod:`qemu_arrays.routes.matmul_cpu`), and a copy
back into the operands' library and device.

Not traceable (``jax.jit`` refuses); the results are the CPU route's bits.
"""

from __future__ import annotations

import numpy as np

from qemu_arrays.matmul_request import MatmulRequest
from qemu_arrays.routes import matmul_cpu

__all__ = ["run"]


def _lib(x) -> str:
    return type(x).__module__.split(".", 1)[0]


def _is_qarray(x) -> bool:
    return hasattr(type(x), "__qemu_arrays_operand__")


def _to_numpy(x, name: str):
    if _is_qarray(x):
        return x
    lib = _lib(x)
    if lib in ("jax", "jaxlib"):
        import jax

        if isinstance(x, jax.core.Tracer):
            msg = (
                f"{name} is a JAX tracer: matmul is computed on the host and cannot be traced by "
                "jax.jit/jax.grad; hint: call it outside jit"
            )
            raise NotImplementedError(msg)
        return np.asarray(x)
    if lib == "torch":
        from qemu_arrays.routes.torch_cpu import to_numpy

        return to_numpy(x.detach().cpu())
    if hasattr(x, "copy_to_host"):  # numba device array
        return x.copy_to_host()
    if hasattr(x, "get") and lib == "cupy":
        return np.asarray(x.get())
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(x)


def _back(res: np.ndarray, like):
    """``res`` in the library (and on the device) of the array ``like``."""
    lib = _lib(like)
    if lib == "torch":
        from qemu_arrays.routes.torch_cpu import to_torch

        return to_torch(res).to(like.device)
    if hasattr(like, "copy_to_host"):
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(res))
    if lib == "cupy":
        import cupy

        return cupy.asarray(res)
    import array_api_compat

    xp = array_api_compat.array_namespace(like)
    dev = getattr(like, "device", None)
    if lib in ("jax", "jaxlib"):
        return xp.asarray(res)
    return xp.asarray(res, device=dev) if dev is not None else xp.asarray(res)


def run(a, b, req: MatmulRequest):
    """``matmul``/``dot`` through the host; the result in the library of the array operand."""
    na, nb = _to_numpy(a, "a"), _to_numpy(b, "b")
    oa, ob = matmul_cpu.operand(na, "a"), matmul_cpu.operand(nb, "b")
    out, _ = matmul_cpu.compute(oa, ob, req)
    like = b if _is_qarray(a) else a
    return _back(np.ascontiguousarray(out), like)
