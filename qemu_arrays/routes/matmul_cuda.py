"""The matmul route of CUDA device arrays (CuPy, PyTorch CUDA tensors, numba device arrays):
the kernels of :mod:`qemu_arrays.cuda_kernels.matmul` for the orders whose additions are all
rounded into an accumulator (``"sequential"``, ``"blocked"`` and ``"pairwise"``) and for the
exact sums (``accumulator=None``, blocked or not), the host round trip of
:mod:`qemu_arrays.routes.matmul_host` for the hardware models (``docs/matmul.md``, "How it
runs").

The plan is the CPU route's (:func:`qemu_arrays.routes.matmul_common.plan`), from the operands'
dtypes and shapes. On the device: 16-bit inputs are widened to float32 (exact), float64 inputs
are checked to hold float32 values (a counting kernel; the CPU route's message on failure), the
batch broadcasting is resolved into two small index arrays, and one launch computes every
output element. The result, in ``plan.out_dtype`` and ``plan.out_shape``, is an array of
``a``'s library on ``a``'s device (both operands must be on one device).
"""

from __future__ import annotations

import math

import numpy as np

from qemu_arrays.cuda_kernels import load
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.matmul_request import MatmulRequest
from qemu_arrays.routes.common import random_keys
from qemu_arrays.routes.cuda_common import _grid, _Lib, _nb
from qemu_arrays.routes.matmul_common import (
    Operand,
    Plan,
    element_format,
    nan_in_accumulator,
    plan,
)

__all__ = ["ORDERS", "on_device", "run"]

#: the orders the CUDA kernels run with an accumulator (and without one: the exact sums)
ORDERS = ("sequential", "blocked", "pairwise")


def exact_geometry(pl: Plan) -> tuple[int, int]:
    """``(base, digits)`` of the wide accumulator of an exact plan, for any data: products of
    float32 values have bits from ``2**-298`` to below ``2**256``; exact blocks add the
    promotion format's values too (the CPU route sizes it from the data instead)."""
    blocked = pl.order == "blocked"
    n = pl.block_k if blocked else pl.K
    base, top = -298, 256 + 2 + math.ceil(math.log2(n + 1))
    if blocked and pl.promote is not None:
        base = min(base, pl.promote.emin - pl.promote.mantissa_bits)
        top = max(top, pl.promote.emax + 2)
    return base, (top - base) // 32 + 4


def on_device(pl: Plan, req: MatmulRequest, limbs: int) -> bool:
    """Whether the plan runs on the CUDA kernels (else the host round trip): no hardware model,
    and every addition rounded into an accumulator (any order), or an exact sum whose wide
    accumulator fits ``limbs`` digits (every format up to float64's range)."""
    if req.model is not None:
        return False
    if pl.acc is not None:
        return pl.order in ORDERS
    return exact_geometry(pl)[1] <= limbs


def _operand(lib: _Lib, x, name: str) -> Operand:
    dt = lib.np_dtype(x)
    return Operand(x, element_format(dt, name), dt == np.float64)


def _values(lib: _Lib, x, name: str, stream):
    """``x`` as a C-contiguous numba device array of float32 or float64 values (16-bit arrays
    widened to float32 on the device; float64 arrays checked to hold float32 values)."""
    from numba import cuda

    dt = lib.np_dtype(x)
    x = lib.contiguous(x)
    if dt.itemsize == 2:
        if lib.kind == "numba":  # numba device arrays have no dtype conversion
            return cuda.to_device(x.copy_to_host().astype(np.float32), stream=stream)
        x = lib.cast(x, np.float32)
    v = _nb(x)
    if dt == np.float64 and v.size:
        from qemu_arrays.cuda_kernels import matmul as km

        err = cuda.to_device(np.zeros(1, np.int64), stream=stream)
        flat = v.reshape(v.size)
        blocks, threads = _grid(v.size)
        km.check_float32_values[blocks, threads, stream](flat, err)
        if int(err.copy_to_host(stream=stream)[0]):
            from qemu_arrays.routes.matmul_cpu import _check_float32_values

            _check_float32_values(v.copy_to_host(), name)  # raises the CPU route's error
    return v


def _as3d(v, vector_axis: int):
    """``(batches, rows, cols)`` view of a contiguous device array (a vector gets the axis of
    length 1 that matmul gives it) and its batch shape."""
    shape = tuple(v.shape)
    if len(shape) == 1:
        shape = (1, shape[0]) if vector_axis == 0 else (shape[0], 1)
    batch = shape[:-2]
    return v.reshape(math.prod(batch), shape[-2], shape[-1]), batch


def _batch_index(batch: tuple, own: tuple) -> np.ndarray:
    """For each output batch (C order), the flat index of the operand's batch (broadcast)."""
    if not batch:
        return np.zeros(1, np.int64)
    idx = np.arange(math.prod(own), dtype=np.int64).reshape(own) if own else np.zeros((), np.int64)
    return np.ascontiguousarray(np.broadcast_to(idx, batch)).reshape(-1)


def _device(la: _Lib, a, b, pl: Plan, req: MatmulRequest):
    from numba import cuda

    km = load_matmul()
    lb = _Lib(b)
    if la.device_index(a) != lb.device_index(b):
        msg = (
            f"a is on CUDA device {la.device_index(a)} and b on {lb.device_index(b)}; matmul "
            "needs both on one device; hint: move one operand"
        )
        raise ValueError(msg)
    with la.device_ctx(a):
        stream = la.stream(a)
        A, ba = _as3d(_values(la, a, "a", stream), 0)
        B, bb = _as3d(_values(lb, b, "b", stream), 1)
        n = math.prod(pl.batch) * pl.M * pl.N
        out = la.empty(a, (n,), pl.out_dtype)
        if n == 0:
            return out.reshape(pl.out_shape)
        IA = cuda.to_device(_batch_index(pl.batch, ba), stream=stream)
        IB = cuda.to_device(_batch_index(pl.batch, bb), stream=stream)
        err = cuda.to_device(np.zeros(1, np.int64), stream=stream)
        fmts = _launch(km, pl, req, A, B, IA, IB, _nb(out), err, stream)
        if not all(f.has_nan for f in fmts) and int(err.copy_to_host(stream=stream)[0]):
            raise nan_in_accumulator(fmts[0])
    return out.reshape(pl.out_shape)


def _launch(km, pl: Plan, req: MatmulRequest, A, B, IA, IB, out, err, stream):
    """Launch the kernel of the plan's order; the formats it rounds into (accumulator first)."""
    from numba import cuda

    acc = pl.acc if pl.acc is not None else (pl.promote or pl.result)
    pp = pl.promote if pl.promote is not None else acc
    P = cuda.to_device(np.array(acc.params() + pp.params(), np.int64), stream=stream)
    seed = req.seed if req.rounding is Rounding.STOCHASTIC else 0
    k0, k1, k2 = random_keys(seed or 0, req.stream)
    blocks, threads = _grid(out.size)
    rnd, fma, r = int(req.rounding), int(req.fma), pl.r
    blocked = int(pl.order == "blocked")
    if pl.acc is None:
        base, nlimbs = exact_geometry(pl)
        km.exact_matmul[blocks, threads, stream](
            A, B, IA, IB, out, P, err, pl.block_k, blocked, base, nlimbs, rnd, 0, k0, k1, k2, r
        )
        return (acc,)
    if pl.order == "pairwise":
        from qemu_arrays.kernels.matmul import pairwise_program

        prog = cuda.to_device(pairwise_program(pl.K), stream=stream)
        km.pairwise_matmul[blocks, threads, stream](
            A, B, IA, IB, out, P, err, prog, rnd, 0, fma, k0, k1, k2, r
        )
    else:
        km.rounded_matmul[blocks, threads, stream](
            A, B, IA, IB, out, P, err, pl.block_k, blocked, rnd, 0, fma, k0, k1, k2, r
        )
    return (acc, pp)


def load_matmul():
    """The kernels module (numba.cuda imported and checked by :func:`cuda_kernels.load`)."""
    load()
    from qemu_arrays.cuda_kernels import matmul as km

    return km


def run(a, b, req: MatmulRequest):
    """``matmul``/``dot`` of two CUDA device arrays: on the device when :func:`on_device`, else
    through the host; the result in ``a``'s library and device."""
    if req.model is not None:  # the tensor-core models run on the host
        from qemu_arrays.routes import matmul_host

        return matmul_host.run(a, b, req)
    la, lb = _Lib(a), _Lib(b)
    oa, ob = _operand(la, a, "a"), _operand(lb, b, "b")
    pl = plan(req, oa, ob, tuple(a.shape), tuple(b.shape))
    if not on_device(pl, req, load_matmul().LIMBS):
        from qemu_arrays.routes import matmul_host

        return matmul_host.run(a, b, req)
    return _device(la, a, b, pl, req)
