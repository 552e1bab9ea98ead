"""``decode`` of block formats on JAX and other array-API arrays: a copy to NumPy, the NumPy
route, and a copy back into the caller's namespace (and device). Not traceable: under ``jax.jit``
it refuses. (Their ``quantize`` and ``encode`` run on the traceable generic route.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.request import Request
from qemu_arrays.routes import cpu

__all__ = ["run"]


def _to_numpy(x):
    if type(x).__module__.split(".", 1)[0] == "torch":
        from qemu_arrays.routes.torch_cpu import to_numpy

        return to_numpy(x.cpu())
    if hasattr(x, "get"):  # CuPy
        return np.asarray(x.get())
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError):
        return np.asarray(x)


def run(x, req: Request):
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    if req.out is not None:
        msg = "out= is not supported for block formats off NumPy; hint: use the return value"
        raise NotImplementedError(msg)
    if type(x).__module__.split(".", 1)[0] in ("jax", "jaxlib"):
        import jax

        if isinstance(x, jax.core.Tracer):
            msg = (
                f"decode of the block format {req.fmt.name!r} is computed on the host and cannot "
                "be traced by jax.jit/jax.grad; hint: decode outside jit, or keep the values "
                "from qemu_arrays.quantize (traceable)"
            )
            raise NotImplementedError(msg)
    arrays = {
        k: _to_numpy(v)
        for k in ("scale", "tensor_scale", "zero_point")
        if (v := getattr(req, k)) is not None and hasattr(v, "shape") and not isinstance(
            v, (np.ndarray, np.generic))
    }  # fmt: skip
    res = cpu.run(_to_numpy(x), replace(req, **arrays) if arrays else req)
    dev = getattr(x, "device", None)

    def back(a):
        return xp.asarray(a, device=dev) if dev is not None else xp.asarray(a)

    if isinstance(res, np.ndarray):
        return back(res)
    if isinstance(res, Encoded):
        return res._replace(
            **{k: back(v) for k, v in res._asdict().items() if isinstance(v, np.ndarray)}
        )
    return res
