"""The NumPy route's element-format step: float arrays rounded by the numba element kernels.

Shared by :mod:`qemu_arrays.routes.cpu` (quantize/encode/decode) and by the scale rules of
:mod:`qemu_arrays.scales` (a scale stored in a float format), which therefore do not go through
the route's dispatch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.ml_dtypes_rules import rounds_float64_via_float32
from qemu_arrays.formats.spec import Overflow, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes.common import kernel_offset, random_args
from qemu_arrays.validation import as_float_array, nan_error

__all__ = [
    "bits_view",
    "decode_table",
    "quantize_float",
    "rne64_plan",
    "rne_plan",
    "round_array",
    "select64_plan",
    "select_plan",
    "widen",
]


def widen(arr, req: Request):
    """(array the kernels read, dtype to return): 16-bit floats widen exactly; float64 is
    rounded to float32 first under ``via_float32`` (or ML_DTYPES where ml_dtypes does so)."""
    if arr.dtype.itemsize == 2:
        return arr.astype(np.float32), arr.dtype
    via32 = req.via_float32 or rounds_float64_via_float32(req.overflow)
    if via32 and arr.dtype == np.float64:
        with np.errstate(over="ignore"):  # float64 beyond float32's range: inf
            return arr.astype(np.float32), arr.dtype
    return (arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)), arr.dtype


def bits_view(arr):
    """``(bits, exponent bits, mantissa bits)`` of a float32/float64 array, flat."""
    if arr.dtype == np.float32:
        return arr.reshape(-1).view(np.uint32), 8, 23
    return arr.reshape(-1).view(np.int64), 11, 52


@lru_cache(maxsize=256)
def rne_plan(fmt, overflow):
    """The constants of the branch-free float32 nearest-even kernel, or None."""
    from qemu_arrays.kernels import elements

    return elements.rne_f32_plan(fmt.params(), overflow_code(overflow))


@lru_cache(maxsize=256)
def rne64_plan(fmt, overflow):
    """The constants of the branch-free float64 nearest-even kernel, or None."""
    from qemu_arrays.kernels import elements

    return elements.rne_f64_plan(fmt.params(), overflow_code(overflow))


@lru_cache(maxsize=256)
def select_plan(fmt, overflow, rounding, r):
    """The constants of the branch-free float32 stochastic/directed kernel, or None."""
    from qemu_arrays.kernels import elements

    return elements.round_f32_plan(fmt.params(), overflow_code(overflow), int(rounding), r)


@lru_cache(maxsize=256)
def select64_plan(fmt, overflow, rounding, r):
    """The constants of the branch-free float64 stochastic/directed kernel, or None."""
    from qemu_arrays.kernels import elements

    return elements.round_f64_plan(fmt.params(), overflow_code(overflow), int(rounding), r)


@lru_cache(maxsize=256)
def decode_table(fmt):
    """Every code's float64 value (formats of at most 16 bits), read-only."""
    from qemu_arrays.kernels import elements

    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    out = np.empty(codes.size, dtype=np.float64)
    elements.decode_codes(codes, out, fmt.params())
    out.flags.writeable = False
    return out


def quantize_float(work, res, req: Request, r, keys):
    """Round ``work`` (float32/float64, contiguous) into the float format of ``req``, writing
    the values to ``res``; returns the count of NaN errors."""
    from qemu_arrays.kernels import elements

    fmt = req.fmt
    xb, in_e, in_m = bits_view(work)
    rb = bits_view(res)[0]
    ovf = overflow_code(req.overflow)
    plan = (
        rne_plan(fmt, req.overflow)
        if req.rounding is Rounding.NEAREST_EVEN and in_m == 23
        else None
    )
    if plan is not None:  # the vectorized kernel: same bits, selects only
        return elements.quantize_f32_rne(xb, rb, plan, fmt.params(), ovf)
    if req.rounding is Rounding.NEAREST_EVEN and in_m == 52:
        plan = rne64_plan(fmt, req.overflow)
        if plan is not None:  # the float64 counterpart: same bits, selects only
            return elements.quantize_f64_rne(xb, rb, plan, fmt.params(), ovf)
    plan = select_plan(fmt, req.overflow, req.rounding, r) if in_m == 23 else None
    if plan is not None:  # stochastic (r <= 32) and directed modes: same bits, selects only
        return elements.quantize_f32_select(
            xb, rb, plan, fmt.params(), int(req.rounding), ovf, *keys, kernel_offset(req.offset), r
        )
    plan = select64_plan(fmt, req.overflow, req.rounding, r) if in_m == 52 else None
    if plan is not None:  # the same for float64 input (r <= 62)
        return elements.quantize_f64_select(
            xb, rb, plan, fmt.params(), int(req.rounding), ovf, *keys, kernel_offset(req.offset), r
        )
    return elements.quantize_float_bits(
        xb, rb, res.reshape(-1), in_e, in_m, fmt.params(), int(req.rounding), ovf, *keys,
        kernel_offset(req.offset), r,
    )  # fmt: skip


def round_array(arr, fmt, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.OWN):
    """``arr`` (a float NumPy array) rounded into the float format ``fmt``: the values, in the
    dtype of ``arr`` (16-bit input is rounded in float32 and returned as float32)."""
    req = Request(Op.QUANTIZE, fmt, rounding=rounding, overflow=overflow)
    work, _ = widen(as_float_array(arr), req)
    r, *keys = random_args(req, work.dtype.itemsize)
    res = np.empty(work.shape, dtype=work.dtype)
    if quantize_float(work, res, req, r, keys):
        raise nan_error(fmt, overflow)
    return res
