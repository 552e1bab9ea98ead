"""The matmul route of CUDA device arrays (CuPy, PyTorch CUDA tensors, numba device arrays):
the kernels of :mod:`qemu_arrays.cuda_kernels.matmul` for the orders whose additions are all
rounded into an accumulator (``"sequential"``, ``"blocked"`` and ``"pairwise"`` with an
accumulator), the host round trip of :mod:`qemu_arrays.routes.matmul_host` for the rest (exact
sums, ``accumulator=None``; the hardware models) (``docs/matmul.md``, "How it runs").

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

#: the orders the CUDA kernels run (with an accumulator)
ORDERS = ("sequential", "blocked", "pairwise")


def on_device(pl: Plan, req: MatmulRequest) -> bool:
    """Whether the plan runs on the CUDA kernels (else the host round trip): every addition
    rounded into an accumulator (sequential, blocked or pairwise order), no hardware model."""
    return req.model is None and pl.acc is not None and pl.order in ORDERS


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
        acc = pl.acc
        pp = pl.promote if pl.promote is not None else acc
        P = cuda.to_device(np.array(acc.params() + pp.params(), np.int64), stream=stream)
        err = cuda.to_device(np.zeros(1, np.int64), stream=stream)
        seed = req.seed if req.rounding is Rounding.STOCHASTIC else 0
        k0, k1, k2 = random_keys(seed or 0, req.stream)
        blocks, threads = _grid(n)
        rnd, fma = int(req.rounding), int(req.fma)
        if pl.order == "pairwise":
            from qemu_arrays.kernels.matmul import pairwise_program

            prog = cuda.to_device(pairwise_program(pl.K), stream=stream)
            km.pairwise_matmul[blocks, threads, stream](
                A, B, IA, IB, _nb(out), P, err, prog, rnd, 0, fma, k0, k1, k2, pl.r
            )
        else:
            blocked = int(pl.order == "blocked")
            km.rounded_matmul[blocks, threads, stream](
                A, B, IA, IB, _nb(out), P, err, pl.block_k, blocked, rnd, 0, fma, k0, k1, k2, pl.r
            )
        if not (acc.has_nan and pp.has_nan) and int(err.copy_to_host(stream=stream)[0]):
            raise nan_in_accumulator(acc)
    return out.reshape(pl.out_shape)


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
    if not on_device(pl, req):
        from qemu_arrays.routes import matmul_host

        return matmul_host.run(a, b, req)
    return _device(la, a, b, pl, req)
