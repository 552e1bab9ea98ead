"""NumPy arrays and PyTorch CPU tensors through the generic route, for what the numba kernels do
not take: caller-supplied random bits (``rbits=``) and ``Rounding.STOCHASTIC_EQUAL``.

The generic route computes the same bits as the kernels (``docs/formats.md``); here it runs on
the NumPy namespace, on a view of the input (PyTorch CPU tensors: a zero-copy NumPy view), and
the result comes back in the caller's type. Element formats with one scale, and block formats
(MX, NVFP4: :mod:`.generic_blocks`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qemu_arrays.request import Request
from qemu_arrays.routes import generic
from qemu_arrays.validation import as_float_array, check_out

__all__ = ["run"]


def _is_tensor(a) -> bool:
    return type(a).__module__.split(".", 1)[0] == "torch"


def run(x, req: Request):
    """``quantize``/``encode`` of a NumPy array or PyTorch CPU tensor on the generic route."""
    if req.is_int and not (np.ndim(req.scale) == 0 and not isinstance(req.scale, str)):
        msg = (
            f"rbits= and Rounding.STOCHASTIC_EQUAL take one scale value with integer formats, "
            f"got scale={req.scale!r}; hint: compute the scale first "
            "(qemu_arrays.compute_scale) and pass a number"
        )
        raise NotImplementedError(msg)
    if req.is_int and (req.axis is not None or req.block_size is not None):
        msg = "rbits= and Rounding.STOCHASTIC_EQUAL take per-tensor integer scales only"
        raise NotImplementedError(msg)
    torch_in = _is_tensor(x)
    if torch_in:
        from qemu_arrays.routes.torch_cpu import to_numpy

        arr = to_numpy(x)
    else:
        arr = as_float_array(x)
    changes = {"out": None}
    if _is_tensor(req.rbits):
        changes["rbits"] = to_numpy(req.rbits)
    elif req.rbits is not None:
        changes["rbits"] = np.asarray(req.rbits)
    if req.is_int and _is_tensor(req.scale):
        changes["scale"] = float(req.scale)
    sub = replace(req, **changes)
    if req.is_block:
        return _blocks(x, arr, sub, torch_in, req.out)
    try:
        res = np.asarray(generic.run(np.asarray(arr), sub))
    except ValueError as e:
        if "broadcast" in str(e) or "shape" in str(e):
            shape = getattr(req.rbits, "shape", None)
            msg = (
                f"rbits of shape {shape} does not broadcast to x of shape {arr.shape}; hint: "
                "one random word per element (or a shape that broadcasts)"
            )
            raise ValueError(msg) from e
        raise
    return _values(x, res, arr.shape, torch_in, req.out)


def _blocks(x, arr, req: Request, torch_in: bool, out=None):
    """A block format through :mod:`.generic_blocks` on NumPy; values (or an ``Encoded``) back
    in the caller's type, ``out=`` filled in place."""
    import array_api_compat

    from qemu_arrays.encoded import Encoded
    from qemu_arrays.routes import generic_blocks

    a = np.asarray(arr)
    if a.ndim and req.rbits is not None:
        try:
            np.broadcast_shapes(np.shape(req.rbits), a.shape)
        except ValueError:
            msg = (
                f"rbits of shape {np.shape(req.rbits)} does not broadcast to x of shape "
                f"{a.shape}; hint: one random word per element (or a shape that broadcasts)"
            )
            raise ValueError(msg) from None
    res = generic_blocks.run(array_api_compat.array_namespace(a), a, req)
    if isinstance(res, Encoded):
        res = res._replace(**{k: np.asarray(v)[()] if len(v.shape) == 0 else np.asarray(v)
                              for k, v in res._asdict().items()
                              if v is not None and hasattr(v, "shape")})  # fmt: skip
        if torch_in:
            from qemu_arrays.routes.torch_cpu import _convert_result, to_torch

            return _convert_result(res, to_torch)
        return res
    return _values(x, np.asarray(res), a.shape, torch_in, out)


def _values(x, res, shape, torch_in: bool, out=None):
    """The values ``res`` in the caller's type, or written into ``out``."""
    if out is not None:
        if torch_in:
            from qemu_arrays.routes.torch_cpu import to_numpy

            np.copyto(to_numpy(out), res.reshape(shape))
            return out
        out = check_out(out, shape, res.dtype)
        np.copyto(out, res.reshape(shape))
        return out
    if torch_in:
        from qemu_arrays.routes.torch_cpu import to_torch

        return to_torch(res.reshape(shape))
    return res if isinstance(x, np.ndarray) else res[()]
