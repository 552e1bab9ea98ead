"""The NumPy route: element and scaled integer formats through the numba CPU kernels.

Block formats go to :mod:`qemu_arrays.routes.cpu_blocks`. The semantics are those of
``docs/formats.md`` and ``docs/scaled.md``; the arithmetic is in :mod:`qemu_arrays.kernels`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qemu_arrays import scales
from qemu_arrays.encoded import Encoded
from qemu_arrays.float_casts import cast_float
from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.spec import IntFormat, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes.common import DECODE_CHUNK, chunks, group_values, kernel_offset, random_args
from qemu_arrays.routes.cpu_elements import bits_view, decode_table, quantize_float, widen
from qemu_arrays.validation import (
    as_float_array,
    check_codes,
    check_float_dtype,
    check_out,
    code_dtype,
    nan_error,
)

__all__ = ["run"]


def run(x, req: Request):
    """``quantize``/``encode``/``decode`` of a NumPy array (or a Python/NumPy scalar, list or
    tuple: read as a NumPy array)."""
    if isinstance(x, np.ndarray) and type(x) is not np.ndarray:
        return _subclass(x, req)
    return _run(x, req)


def _run(x, req: Request, rule_x=None):
    if req.is_block:
        from qemu_arrays.routes import cpu_blocks

        return cpu_blocks.run(x, req)
    if req.op is Op.DECODE:
        return _decode(x, req)
    arr = as_float_array(x)
    if req.op is Op.QUANTIZE:
        res = _quantize(arr, req, rule_x)
        return res if isinstance(x, np.ndarray) or req.out is not None else res[()]
    return _encode(arr, req, rule_x)


def _subclass(x, req: Request):
    """ndarray subclasses compute on a plain view of their data: the same bits as a plain copy.

    A masked array's masked elements are computed as 0 (for block formats: as padding, which
    changes no block scale) and a scale rule ignores them; the result is masked where ``x`` is,
    and the data under the mask is never read (a masked NaN does not raise). ``np.matrix`` input
    gives ``np.matrix`` results; other subclasses (``np.memmap``, ...) give plain arrays.
    """
    mask = None
    rule_x = None
    if isinstance(x, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(x).copy()
        if req.scale_rule is not None and not req.is_block:
            rule_x = np.ma.filled(x.astype(np.float64), np.nan)
        data = np.ma.filled(x, 0)
    else:
        data = np.asarray(x)
    res = _run(data, req, rule_x)

    def wrap(a):
        if not isinstance(a, np.ndarray) or a is req.out:
            return a
        if mask is not None:
            return np.ma.masked_array(a, mask=mask)
        if isinstance(x, np.matrix) and a.ndim == 2:
            return a.view(np.matrix)
        return a

    if isinstance(res, Encoded):
        return res._replace(codes=wrap(res.codes))
    if res is req.out and mask is not None and isinstance(res, np.ma.MaskedArray):
        res.mask = mask
    return wrap(res)


# ---- integer scales -----------------------------------------------------------------------------


def _int_scales(req: Request, shape, work):
    """``(scales, zero points, axis, block_size)`` in the group shape for ``work`` (the data
    of a scale rule)."""
    return scales.group_scales(
        work, req.fmt, req.scale, req.zero_point, shape, axis=req.axis,
        block_size=req.block_size, symmetric=req.symmetric, percentile=req.percentile,
        scale_format=req.scale_format,
    )  # fmt: skip


def _quantize_int(work, res, req: Request, r, keys, rule_x=None):
    from qemu_arrays.kernels import elements

    fmt = req.fmt
    sg, zg, g_axis, g_bs = _int_scales(req, work.shape, work if rule_x is None else rule_x)
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
            int(req.rounding), *keys, kernel_offset(req.offset), r, 1,
        )  # fmt: skip


def _quantize(arr, req: Request, rule_x=None):
    work, out_dtype = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    out = check_out(req.out, arr.shape, arr.dtype)
    res = np.empty(work.shape, dtype=work.dtype)
    if isinstance(req.fmt, IntFormat):
        err = _quantize_int(work, res, req, r, keys, rule_x)
    else:
        err = quantize_float(work, res, req, r, keys)
    if err:
        raise nan_error(req.fmt, req.overflow)
    if res.dtype != out_dtype:  # one rounding of our own; beyond the dtype's range: inf (docs)
        res = cast_float(res, out_dtype)
    if out is not None:
        out[...] = res
        return out
    return res


def _encode(arr, req: Request, rule_x=None):
    from qemu_arrays.kernels import elements

    fmt = req.fmt
    work, _ = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    cdt = code_dtype(fmt.bits)
    if isinstance(fmt, IntFormat):
        sg, zg, g_axis, g_bs = _int_scales(req, arr.shape, work if rule_x is None else rule_x)
        s, z = scales.flatten_groups(sg, zg, arr.shape, g_axis, g_bs)
        k = np.empty(arr.size, dtype=np.int64)
        with elements.threads_for(work.size):
            err = elements.quantize_int(
                work.reshape(-1), np.empty(1, np.float64), k, s, z, fmt.min, fmt.max,
                int(req.rounding), *keys, kernel_offset(req.offset), r, 2,
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
            *keys, kernel_offset(req.offset), r,
        )  # fmt: skip
    if err:
        raise nan_error(fmt, req.overflow)
    return codes.reshape(arr.shape)


@lru_cache(maxsize=256)
def _value_table(fmt, dtype):
    """Every code's value already rounded to the output dtype (read-only): decoding is then
    one gather, with no float64 temporary per code."""
    t = np.array(cast_float(decode_table(fmt), dtype))
    t.flags.writeable = False
    return t


def _decode(codes, req: Request):
    fmt = req.fmt
    codes = check_codes(codes, fmt.bits, repr(fmt.name))
    dtype = check_float_dtype(req.dtype)
    out = np.empty(codes.shape, dtype=dtype)
    flat_out = out.reshape(-1)
    flat = codes.reshape(-1)  # a view when contiguous
    n = flat.size
    if isinstance(fmt, IntFormat):
        sg, zg, g_axis, g_bs = scales.group_scales(
            None, fmt, req.scale, req.zero_point, codes.shape, axis=req.axis,
            block_size=req.block_size,
        )  # fmt: skip
        for name, a in (("scale", sg), ("zero_point", zg)):
            if a.size != 1 and a.ndim != codes.ndim:
                msg = f"{name} of shape {a.shape} does not broadcast to codes' shape {codes.shape}"
                raise ValueError(msg)
        for lo, hi in chunks(n):
            k = flat[lo:hi].astype(np.int64)
            if fmt.signed:
                k = np.where(k >> (fmt.bits - 1), k - (1 << fmt.bits), k)
            if fmt.narrow_range and (k < fmt.min).any():
                msg = (
                    f"codes hold {1 << (fmt.bits - 1)}, which the narrow-range {fmt.name!r} does "
                    f"not use: they must be {fmt.min} ... {fmt.max}; hint: codes come from "
                    "qemu_arrays.encode of the same format"
                )
                raise ValueError(msg)
            s = group_values(sg, codes.shape, g_axis, g_bs, lo, hi)
            z = group_values(zg, codes.shape, g_axis, g_bs, lo, hi)
            flat_out[lo:hi] = cast_float((k - z) * s, dtype)
        return out
    if fmt.bits <= 16:
        table = _value_table(fmt, dtype)
        for lo, hi in chunks(n):
            np.take(table, flat[lo:hi].astype(np.intp), out=flat_out[lo:hi], mode="clip")
        return out
    from qemu_arrays.kernels import elements

    tmp = np.empty(min(n, DECODE_CHUNK), dtype=np.float64)
    for lo, hi in chunks(n):
        elements.decode_codes(flat[lo:hi].astype(np.int64), tmp[: hi - lo], fmt.params())
        flat_out[lo:hi] = cast_float(tmp[: hi - lo], dtype)
    return out
