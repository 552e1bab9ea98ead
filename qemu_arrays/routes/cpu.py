"""The NumPy route: element, scaled integer and scaled float formats through the numba CPU
kernels.

Block formats go to :mod:`qemu_arrays.routes.cpu_blocks`. The semantics are those of
``docs/formats.md`` and ``docs/scaled.md``; the arithmetic is in :mod:`qemu_arrays.kernels`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from qemu_arrays import scales
from qemu_arrays.encoded import Encoded
from qemu_arrays.float_casts import cast_float
from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.spec import IntFormat, Overflow, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes.common import DECODE_CHUNK, chunks, group_values, kernel_offset, random_args
from qemu_arrays.routes.cpu_elements import (
    bits_view,
    decode_table,
    quantize_float,
    rne_plan,
    select_plan,
    widen,
)
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
        return elements.quantize_int_rne(work.reshape(-1), res.reshape(-1), s[0], lo, hi)
    return elements.quantize_int(
        work.reshape(-1), res.reshape(-1), np.empty(1, np.int64), s, z, fmt.min, fmt.max,
        int(req.rounding), *keys, kernel_offset(req.offset), r, 1,
    )  # fmt: skip


# ---- scaled float formats ------------------------------------------------------------------------


def _float_scales(req: Request, shape, work):
    """``(float32 scales in the group shape, axis, block_size)`` of a scaled float request."""
    sg, _, g_axis, g_bs = _int_scales(req, shape, work)
    return sg, g_axis, g_bs


def _scaled_quotient(work, req: Request, rule_x=None):
    """``(quotient x / s in the work dtype, per-element-broadcastable scales in the work dtype,
    group scales, axis, block_size)``: one IEEE division in float32 (float64 for float64 work),
    correctly rounded, subnormals kept (docs/scaled.md)."""
    sg, g_axis, g_bs = _float_scales(req, work.shape, work if rule_x is None else rule_x)
    s = scales.per_element(sg, work.shape, g_axis, g_bs).astype(work.dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        q = np.ascontiguousarray(np.divide(work, s, dtype=work.dtype))
    return q, s, sg, g_axis, g_bs


def _element_request(req: Request) -> Request:
    """The element step of a scaled float request: the quotient rounded, saturating."""
    return replace(req, scale=None, axis=None, block_size=None, scale_format=None,
                   overflow=Overflow.SATURATE)  # fmt: skip


def _quantize_scaled_float(work, res, req: Request, r, keys, rule_x=None):
    q, s, *_ = _scaled_quotient(work, req, rule_x)
    qr = np.empty_like(q)
    err = quantize_float(q, qr, _element_request(req), r, keys)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        np.multiply(qr, s, out=res, dtype=res.dtype)  # one rounding in the work dtype
    return err


def _quantize(arr, req: Request, rule_x=None):
    res16 = _quantize_16(arr, req)
    if res16 is not None:
        return res16
    work, out_dtype = widen(arr, req)
    r, *keys = random_args(req, work.dtype.itemsize)
    out = check_out(req.out, arr.shape, arr.dtype)
    plain = not req.is_scaled_float and not isinstance(req.fmt, IntFormat)
    direct = _direct_out(out, work, req) if plain else None
    res = np.empty(work.shape, dtype=work.dtype) if direct is None else direct
    if req.is_scaled_float:
        err = _quantize_scaled_float(work, res, req, r, keys, rule_x)
    elif isinstance(req.fmt, IntFormat):
        err = _quantize_int(work, res, req, r, keys, rule_x)
    else:
        err = quantize_float(work, res, req, r, keys)
    if err:
        raise nan_error(req.fmt, req.overflow)
    if res.dtype != out_dtype:  # one rounding of our own; beyond the dtype's range: inf (docs)
        res = cast_float(res, out_dtype)
    if out is not None:
        if res is not out:
            out[...] = res
        return out
    return res


def _quantize_16(arr, req: Request):
    """Nearest-even, directed and stochastic rounding (``random_bits <= 32``) of a
    float16/bfloat16 array into an element float format in one pass of a 16-bit kernel (the
    float32 route's bits: the same random bits per element), or None where no such kernel
    applies (the float32 route then)."""
    if arr.dtype.itemsize != 2 or req.is_scaled_float or isinstance(req.fmt, IntFormat):
        return None
    from qemu_arrays.kernels import elements

    r, *keys = random_args(req, 4)  # those of the float32 route
    if req.rounding is Rounding.NEAREST_EVEN:
        plan = rne_plan(req.fmt, req.overflow)
    else:
        plan = select_plan(req.fmt, req.overflow, req.rounding, r)
    if plan is None:
        return None
    out = check_out(req.out, arr.shape, arr.dtype)
    src = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    direct = _direct_out(out, src, req)
    res = np.empty(arr.shape, dtype=arr.dtype) if direct is None else direct
    bf = int(arr.dtype != np.float16)
    xh, rh = src.reshape(-1).view(np.uint16), res.reshape(-1).view(np.uint16)
    if req.rounding is Rounding.NEAREST_EVEN:
        done = elements.quantize_16_rne(xh, rh, plan, bf)
    else:
        offset = kernel_offset(req.offset)
        done = elements.quantize_16_select(xh, rh, plan, int(req.rounding), *keys, offset, r, bf)
    if not done:
        return None  # a NaN into a format without NaN: the float32 route decides (and raises)
    if out is not None and res is not out:
        out[...] = res
        return out
    return res


def _direct_out(out, work, req: Request):
    """``out`` as the element kernels' own output buffer (no temporary, no copy) where they can
    write it: the work dtype, C order, either apart from the input or the input itself (the
    kernels read and write each element at the same index), and no input the format may refuse
    (a failing call leaves ``out`` as it was: see :func:`_may_raise`). Else None."""
    if out is None or out.dtype != work.dtype or not out.flags.c_contiguous:
        return None
    same = out.__array_interface__["data"][0] == work.__array_interface__["data"][0]
    if np.may_share_memory(out, work) and not same:
        return None
    if _may_raise(work, req):
        return None
    return out


def _may_raise(work, req: Request) -> bool:
    """Whether rounding ``work`` into the element format of ``req`` might raise: only a format
    without NaN (NaN input) or without zero (zero input) refuses a value, and only then does
    one read-only pass count those inputs (a hit: the kernels write a temporary, so that an
    error leaves ``out`` untouched; the kernels decide whether it is an error)."""
    fmt = req.fmt
    no_zero = not fmt.has_zero
    if fmt.has_nan and not no_zero:
        return False
    if req.overflow is Overflow.ML_DTYPES and not no_zero:
        return False  # NaN into a format without NaN (but with zero): a zero, never an error
    from qemu_arrays.kernels import elements

    if work.dtype.itemsize == 2:  # float16 or bfloat16, read as bits
        e, m = (5, 10) if work.dtype == np.float16 else (8, 7)
        xb = work.reshape(-1).view(np.uint16)
    else:
        xb, e, m = bits_view(work)
    return elements.count_specials(xb, e, m, no_zero) > 0


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
    overflow, sg, g_axis, g_bs = req.overflow, None, None, None
    if req.is_scaled_float:
        work, _, sg, g_axis, g_bs = _scaled_quotient(work, req, rule_x)
        overflow = Overflow.SATURATE
    xb, in_e, in_m = bits_view(work)
    codes = np.empty(arr.size, dtype=cdt)
    plan = (
        rne_plan(fmt, overflow)
        if req.rounding is Rounding.NEAREST_EVEN and in_m == 23 and fmt.bits <= 16
        else None
    )
    splan = None
    if plan is None and in_m == 23 and fmt.bits <= 16:
        splan = select_plan(fmt, overflow, req.rounding, r)
    if plan is not None:  # the vectorized kernel: same codes, selects only
        err = elements.encode_f32_rne(xb, codes, plan, fmt.params(), overflow_code(overflow))
    elif splan is not None:  # stochastic and directed: the same, in one pass
        err = elements.encode_f32_select(
            xb, codes, splan, fmt.params(), int(req.rounding), overflow_code(overflow), *keys,
            kernel_offset(req.offset), r,
        )  # fmt: skip
    else:
        err = elements.encode_float_bits(
            xb, codes, in_e, in_m, fmt.params(), int(req.rounding), overflow_code(overflow),
            *keys, kernel_offset(req.offset), r,
        )  # fmt: skip
    if err:
        raise nan_error(fmt, overflow)
    codes = codes.reshape(arr.shape)
    if req.scaled:
        return Encoded(codes, sg, None, None, g_axis, g_bs)
    return codes


@lru_cache(maxsize=256)
def _value_table(fmt, dtype):
    """Every code's value already rounded to the output dtype (read-only): decoding is then
    one gather, with no float64 temporary per code."""
    t = np.array(cast_float(decode_table(fmt), dtype))
    t.flags.writeable = False
    return t


def _decode_table(codes, req: Request):
    """Codes of a format of at most 16 bits, given as a uint8/uint16 array, decoded in one
    pass (the range check included): float32 values by arithmetic where the format allows
    (``decode_plan``), else a gather of the value table; None where neither applies."""
    fmt = req.fmt
    if not isinstance(codes, np.ndarray) or codes.dtype not in (np.uint8, np.uint16):
        return None
    if fmt.bits > 16 or isinstance(fmt, IntFormat) or req.scale is not None:
        return None
    from qemu_arrays.kernels import elements

    dtype = check_float_dtype(req.dtype)
    src = (codes if codes.flags.c_contiguous else np.ascontiguousarray(codes)).reshape(-1)
    out = np.empty(codes.shape, dtype=dtype)
    dplan = _decode_plan(fmt) if dtype == np.float32 else None
    if dplan is not None:  # by arithmetic, vectorized
        bad = elements.decode_f32(src, out.reshape(-1).view(np.uint32), dplan)
    else:
        table = _value_table(fmt, dtype)
        ut = np.dtype(f"u{table.itemsize}")
        bad = elements.decode_gather(src, table.view(ut), out.reshape(-1).view(ut))
    if bad:
        check_codes(codes, fmt.bits, repr(fmt.name))  # raises, naming a code out of range
    return out


@lru_cache(maxsize=256)
def _decode_plan(fmt):
    """The constants of the arithmetic float32 decode kernel, or None."""
    from qemu_arrays.kernels import elements

    table = _value_table(fmt, np.dtype(np.float32)).view(np.uint32)
    return elements.decode_plan(fmt.params(), table)


def _decode(codes, req: Request):
    fmt = req.fmt
    res = _decode_table(codes, req)
    if res is not None:
        return res
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
        if req.scale is not None:  # a scaled float format: value(c) * s, rounded once
            return _scaled_float_values(
                decode_table(fmt)[codes.astype(np.intp)], req, codes.shape, dtype
            )
        for lo, hi in chunks(n):
            np.take(table, flat[lo:hi].astype(np.intp), out=flat_out[lo:hi], mode="clip")
        return out
    from qemu_arrays.kernels import elements

    tmp = np.empty(min(n, DECODE_CHUNK), dtype=np.float64)
    for lo, hi in chunks(n):
        elements.decode_codes(flat[lo:hi].astype(np.int64), tmp[: hi - lo], fmt.params())
        flat_out[lo:hi] = cast_float(tmp[: hi - lo], dtype)
    if req.scale is not None:
        return _scaled_float_values(out.astype(np.float64), req, codes.shape, dtype)
    return out


def _scaled_float_values(vals, req: Request, shape, dtype):
    """``value(c) * s`` as quantize computes it: in float64 for float64 output, else one float32
    product (then cast to ``dtype``), so that ``decode(encode(x)) == quantize(x)``."""
    sg, _, g_axis, g_bs = scales.group_scales(
        None, req.fmt, req.scale, None, shape, axis=req.axis, block_size=req.block_size,
    )  # fmt: skip
    wdt = np.float64 if dtype == np.float64 else np.float32
    s = scales.per_element(sg, shape, g_axis, g_bs).astype(wdt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return cast_float(np.multiply(vals.astype(wdt), s, dtype=wdt), dtype)
