"""The NumPy route: element, scaled integer and scaled float formats through the numba CPU
kernels.

Block formats go to :mod:`qemu_arrays.routes.cpu_blocks`. The semantics are those of
``docs/formats.md`` and ``docs/scaled.md``; the arithmetic is in :mod:`qemu_arrays.kernels`.
"""

from __future__ import annotations

import numpy as np

from qemu_arrays import scales
from qemu_arrays.encoded import Encoded
from qemu_arrays.float_casts import cast_float
from dataclasses import replace

from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.spec import IntFormat, Overflow, Rounding
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


# ---- scaled float formats ------------------------------------------------------------------------


def _float_scales(req: Request, shape, work):
    """``(float32 scales in the group shape, axis, block_size)`` of a scaled float request."""
    sg, _, g_axis, g_bs = _int_scales(req, shape, work)
    return sg, g_axis, g_bs


def _scaled_quotient(work, req: Request):
    """``(quotient x / s in the work dtype, per-element-broadcastable scales in the work dtype,
    group scales, axis, block_size)``: one IEEE division in float32 (float64 for float64 work),
    correctly rounded, subnormals kept (docs/scaled.md)."""
    sg, g_axis, g_bs = _float_scales(req, work.shape, work)
    s = scales.per_element(sg, work.shape, g_axis, g_bs).astype(work.dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        q = np.ascontiguousarray(np.divide(work, s, dtype=work.dtype))
    return q, s, sg, g_axis, g_bs


def _element_request(req: Request) -> Request:
    """The element step of a scaled float request: the quotient rounded, saturating."""
    return replace(req, scale=None, axis=None, block_size=None, scale_format=None,
                   overflow=Overflow.SATURATE)  # fmt: skip


def _quantize_scaled_float(work, res, req: Request, r, keys):
    q, s, *_ = _scaled_quotient(work, req)
    qr = np.empty_like(q)
    err = quantize_float(q, qr, _element_request(req), r, keys)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        np.multiply(qr, s, out=res, dtype=res.dtype)  # one rounding in the work dtype
    return err


def _quantize(arr, req: Request):
    work, out_dtype = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    out = check_out(req.out, arr.shape, arr.dtype)
    res = np.empty(work.shape, dtype=work.dtype)
    if req.is_scaled_float:
        quantize = _quantize_scaled_float
    else:
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
    overflow, sg, g_axis, g_bs = req.overflow, None, None, None
    if req.is_scaled_float:
        work, _, sg, g_axis, g_bs = _scaled_quotient(work, req)
        overflow = Overflow.SATURATE
    xb, in_e, in_m = bits_view(work)
    codes = np.empty(arr.size, dtype=cdt)
    with elements.threads_for(work.size):
        err = elements.encode_float_bits(
            xb, codes, in_e, in_m, fmt.params(), int(req.rounding), overflow_code(overflow),
            *keys, int(req.offset), r,
        )  # fmt: skip
    if err:
        raise nan_error(fmt, overflow)
    codes = codes.reshape(arr.shape)
    if req.scaled:
        return Encoded(codes, sg, None, None, g_axis, g_bs)
    return codes


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
        vals = decode_table(fmt)[codes.astype(np.intp)]
    else:
        from qemu_arrays.kernels import elements

        out = np.empty(codes.size, dtype=np.float64)
        flat = np.ascontiguousarray(codes).reshape(-1).astype(np.int64)
        elements.decode_codes(flat, out, fmt.params())
        vals = out.reshape(codes.shape)
    if req.scale is not None:  # a scaled float format: value(c) * s, rounded once
        vals = _scaled_float_values(vals, req, codes.shape, dtype)
    return cast_float(vals, dtype)


def _scaled_float_values(vals, req: Request, shape, dtype):
    """``value(c) * s`` as quantize computes it: in float64 for float64 output, else one float32
    product (then cast to ``dtype``), so that ``decode(encode(x)) == quantize(x)``."""
    sg, _, g_axis, g_bs = scales.group_scales(
        None, req.fmt, req.scale, None, shape, axis=req.axis, block_size=req.block_size,
    )  # fmt: skip
    wdt = np.float64 if dtype == np.float64 else np.float32
    s = scales.per_element(sg, shape, g_axis, g_bs).astype(wdt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.multiply(vals.astype(wdt), s, dtype=wdt)
