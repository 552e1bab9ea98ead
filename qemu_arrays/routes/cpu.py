"""The NumPy route: element and scaled integer formats through the numba CPU kernels.

Block formats go to :mod:`qemu_arrays.routes.cpu_blocks`. The semantics are those of
``docs/formats.md`` and ``docs/scaled.md``; the arithmetic is in :mod:`qemu_arrays.kernels`.
"""

from __future__ import annotations

import numpy as np

from qemu_arrays import scales
from qemu_arrays.encoded import Encoded
from qemu_arrays.float_casts import cast_float
from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.spec import IntFormat, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes.common import random_args
from qemu_arrays.routes.cpu_elements import bits_view, decode_table, quantize_float, widen
from qemu_arrays.validation import (
    FLOAT_DTYPES,
    as_float_array,
    check_out,
    code_dtype,
    nan_error,
)

__all__ = ["run"]


def run(x, req: Request):
    """``quantize``/``encode``/``decode`` of a NumPy array (or a Python/NumPy scalar, list or
    tuple: read as a NumPy array)."""
    if req.is_block:
        from qemu_arrays.routes import cpu_blocks

        return cpu_blocks.run(x, req)
    if req.op is Op.DECODE:
        return _decode(x, req)
    arr = as_float_array(x)
    if req.op is Op.QUANTIZE:
        res = _quantize(arr, req)
        return res if isinstance(x, np.ndarray) or req.out is not None else res[()]
    return _encode(arr, req)


# ---- integer scales -----------------------------------------------------------------------------


def _int_scales(req: Request, shape, work):
    """``(scales, zero points, axis, block_size)`` in the group shape for ``work``."""
    return scales.group_scales(
        work, req.fmt, req.scale, req.zero_point, shape, axis=req.axis,
        block_size=req.block_size, symmetric=req.symmetric, percentile=req.percentile,
        scale_format=req.scale_format,
    )  # fmt: skip


def _quantize_int(work, res, req: Request, r, keys):
    from qemu_arrays.kernels import elements

    fmt = req.fmt
    sg, zg, g_axis, g_bs = _int_scales(req, work.shape, work)
    geo = None
    if req.rounding is Rounding.NEAREST_EVEN and g_axis is not None:
        geo = scales.group_geometry(work.shape, sg, zg, g_axis, g_bs)
    if geo is not None:  # per channel / per group without one scale per element
        from qemu_arrays.kernels import scaled as scaled_kernels

        dims, s3, z3, blk = geo
        return scaled_kernels.quantize_groups(
            work.reshape(dims), res.reshape(dims), s3, z3, blk, float(fmt.min), float(fmt.max)
        )
    s, z = scales.flatten_groups(sg, zg, work.shape, g_axis, g_bs)
    if req.rounding is Rounding.NEAREST_EVEN and s.size == 1 and z.size == 1:
        lo, hi = float(fmt.min - z[0]), float(fmt.max - z[0])  # vectorized, same bits
        with elements.threads_for(work.size):
            return elements.quantize_int_rne(work.reshape(-1), res.reshape(-1), s[0], lo, hi)
    with elements.threads_for(work.size):
        return elements.quantize_int(
            work.reshape(-1), res.reshape(-1), np.empty(1, np.int64), s, z, fmt.min, fmt.max,
            int(req.rounding), *keys, int(req.offset), r, 1,
        )  # fmt: skip


def _quantize(arr, req: Request):
    work, out_dtype = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    out = check_out(req.out, arr.shape, arr.dtype)
    res = np.empty(work.shape, dtype=work.dtype)
    quantize = _quantize_int if isinstance(req.fmt, IntFormat) else quantize_float
    if quantize(work, res, req, r, keys):
        raise nan_error(req.fmt, req.overflow)
    if res.dtype != out_dtype:  # one rounding of our own; beyond the dtype's range: inf (docs)
        res = cast_float(res, out_dtype)
    if out is not None:
        out[...] = res
        return out
    return res


def _encode(arr, req: Request):
    from qemu_arrays.kernels import elements

    fmt = req.fmt
    work, _ = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    cdt = code_dtype(fmt.bits)
    if isinstance(fmt, IntFormat):
        sg, zg, g_axis, g_bs = _int_scales(req, arr.shape, work)
        s, z = scales.flatten_groups(sg, zg, arr.shape, g_axis, g_bs)
        k = np.empty(arr.size, dtype=np.int64)
        with elements.threads_for(work.size):
            err = elements.quantize_int(
                work.reshape(-1), np.empty(1, np.float64), k, s, z, fmt.min, fmt.max,
                int(req.rounding), *keys, int(req.offset), r, 2,
            )  # fmt: skip
        if err:
            raise nan_error(fmt, req.overflow)
        codes = (k & ((1 << fmt.bits) - 1)).astype(cdt).reshape(arr.shape)
        if req.scaled:
            return Encoded(codes, sg, zg, None, g_axis, g_bs)
        return codes
    xb, in_e, in_m = bits_view(work)
    codes = np.empty(arr.size, dtype=cdt)
    with elements.threads_for(work.size):
        err = elements.encode_float_bits(
            xb, codes, in_e, in_m, fmt.params(), int(req.rounding), overflow_code(req.overflow),
            *keys, int(req.offset), r,
        )  # fmt: skip
    if err:
        raise nan_error(fmt, req.overflow)
    return codes.reshape(arr.shape)


def _decode(codes, req: Request):
    fmt = req.fmt
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        msg = (
            f"codes must be an integer array, got dtype {codes.dtype}; hint: codes come from "
            "qemu_arrays.encode"
        )
        raise TypeError(msg)
    dtype = np.dtype(np.float32 if req.dtype is None else req.dtype)
    if dtype not in FLOAT_DTYPES:
        msg = f"dtype must be float16, bfloat16, float32 or float64, got {dtype}"
        raise TypeError(msg)
    if codes.size and (codes.min() < 0 or int(codes.max()) >> fmt.bits):
        msg = f"codes must lie in [0, 2**{fmt.bits}) for {fmt.name!r}, got values outside"
        raise ValueError(msg)
    if isinstance(fmt, IntFormat):
        sg, zg, g_axis, g_bs = scales.group_scales(
            None, fmt, req.scale, req.zero_point, codes.shape, axis=req.axis,
            block_size=req.block_size,
        )  # fmt: skip
        s, z = scales.flatten_groups(sg, zg, codes.shape, g_axis, g_bs)
        k = codes.astype(np.int64)
        if fmt.signed:
            k = np.where(k >> (fmt.bits - 1), k - (1 << fmt.bits), k)
        if (k < fmt.min).any():
            msg = f"code {1 << (fmt.bits - 1)} is not used by the narrow-range {fmt.name!r}"
            raise ValueError(msg)
        vals = (k.reshape(-1) - z) * s
        return cast_float(vals.reshape(codes.shape), dtype)
    if fmt.bits <= 16:
        return cast_float(decode_table(fmt)[codes.astype(np.intp)], dtype)
    from qemu_arrays.kernels import elements

    out = np.empty(codes.size, dtype=np.float64)
    flat = np.ascontiguousarray(codes).reshape(-1).astype(np.int64)
    elements.decode_codes(flat, out, fmt.params())
    return cast_float(out.reshape(codes.shape), dtype)
