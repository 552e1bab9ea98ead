"""Block formats (OCP MX v1.0, NVFP4): quantize, encode and decode.

Blocks of ``fmt.block_size`` consecutive elements along ``axis`` (default the last) share one
scale. The rules (scale computation, NaN/Inf, saturation, padding) are those of
``docs/blocks.md``; the arithmetic runs in the fused numba kernels of
:mod:`qemu_arrays.kernels.blocks`.

Padding: when the axis length is not a multiple of the block size, the last block of each row
is shorter. It is quantized as if padded with zeros (zeros change no block maximum), which is
what hardware that pads a tensor to whole blocks computes; ``encode`` returns codes of the
original shape and ``ceil(n / block_size)`` scales along the axis, never padding elements.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.float_casts import cast_float
from qemu_arrays.formats.block_plans import RoundingArgs, int_element, mx_scale_plan
from qemu_arrays.formats.spec import FloatFormat, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes.common import chunks, group_values, kernel_offset, random_args
from qemu_arrays.routes.cpu_elements import decode_table
from qemu_arrays.validation import (
    as_float_array,
    check_axis,
    check_codes,
    check_float_dtype,
    check_out,
    check_tensor_scale,
)

__all__ = ["block_values", "decode_block", "run", "tensor_scale_of"]

_FAST_PATH = True  # the kernels' fast path on the bits (tests turn it off to compare)
_NO_PLAN = (0,) * 10 + (1.0,)  # the rne_f32_plan argument where none applies


def _check_block_axis(arr, axis):
    if arr.ndim == 0:
        msg = "block formats need an array of at least one dimension, got a scalar; hint: x[None]"
        raise ValueError(msg)
    return check_axis(-1 if axis is None else axis, arr.ndim)


def tensor_scale_of(x, fmt) -> np.float32:
    """The NVFP4 per-tensor scale: ``float32(amax / (element max * scale max))``.

    ``amax`` is the largest finite magnitude of ``x``; the quotient is rounded once (nearest
    even) to float32. An all-zero (or all non-finite) tensor gets 1; a quotient that rounds to
    zero gets the smallest positive float32.
    """
    from fractions import Fraction

    from qemu_arrays.formats.reference import quantize_value

    x = np.asarray(x)
    if x.dtype == np.float32 and x.size:
        from qemu_arrays.kernels import blocks as cpu_blocks

        flat = np.ascontiguousarray(x).reshape(-1).view(np.uint32)
        amax = float(cpu_blocks.max_finite_f32(flat, 1 << 16))
    else:
        a = np.abs(np.asarray(x, dtype=np.float64))
        a = a[np.isfinite(a)]
        amax = float(a.max()) if a.size else 0.0
    if amax == 0.0:
        return np.float32(1.0)
    div = Fraction(fmt.element.max) * Fraction(fmt.scale.max)
    t = quantize_value(Fraction(amax) / div, "float32")
    if t == 0.0:
        t = float(np.finfo(np.float32).smallest_subnormal)
    return np.float32(t)


def _check_tensor_scale(ts):
    return check_tensor_scale(ts)


def _short_last_blocks(work, out, call, general):
    """The fast kernels take the whole blocks of each row; a short last block (``n % bs``
    elements, as if padded with zeros) goes through ``general(x, out, rows, cols, scodes,
    codes, idxmap)``, the general kernel, on a copy of those columns (``idxmap`` their flat
    indices, for the random bits), and is written back into place."""
    R, n, nb, bs = call.R, call.n, call.nb, call.bs
    rt = n - (n // bs) * bs
    if rt == 0 or R == 0:
        return
    tail = np.ascontiguousarray(work.reshape(R, n)[:, n - rt :]).reshape(-1)
    out_t = np.empty(R * rt if call.want & 1 else 1, dtype=out.dtype)
    codes_t = np.empty(R * rt if call.want & 2 else 1, dtype=call.codes.dtype)
    sc_t = np.empty(R, dtype=call.scodes.dtype)
    idx_t = np.zeros(1, dtype=np.int64)
    if call.ra.rnd == int(Rounding.STOCHASTIC):
        rows = np.arange(R, dtype=np.int64)[:, None] * n
        idx_t = (rows + np.arange(n - rt, n, dtype=np.int64)[None, :]).reshape(-1)
    general(tail, out_t, R, rt, sc_t, codes_t, idx_t)
    if call.want & 1:
        out.reshape(R, n)[:, n - rt :] = out_t.reshape(R, rt)
    if call.want & 2:
        call.codes.reshape(R, n)[:, n - rt :] = codes_t.reshape(R, rt)
    call.scodes.reshape(R, nb)[:, nb - 1] = sc_t


class _Call(NamedTuple):
    """One kernel call's geometry and arguments: rows of ``n`` elements, blocks along them."""

    R: int
    n: int
    nb: int
    bs: int
    ra: RoundingArgs
    idxmap: np.ndarray  # C-order index of each element (stochastic rounding along another axis)
    want: int  # bit 1: values, bit 2: codes
    nearest_even: bool
    codes: np.ndarray
    scodes: np.ndarray


def _vec_ok(plan, call, out):
    """Whether the select-only nearest-even steps apply (float32 values only)."""
    return bool(
        plan is not None
        and _FAST_PATH
        and call.want == 1
        and out.dtype == np.float32
        and call.nearest_even
    )


def _fast_args(ep, plan, call, out):
    """The ``ea`` argument of the fast float32 kernels (``kernels.blocks.sel_args``) for this
    call: any mode of ``round32`` (stochastic with the random bits of the flat index, so blocks
    along the last axis), values into float32 or codes; None where the general kernel runs."""
    from qemu_arrays.kernels import blocks as cpu_blocks
    from qemu_arrays.kernels import elements as cpu

    if plan is None or not _FAST_PATH or call.want not in (1, 2):
        return None
    if call.want == 1 and out.dtype != np.float32:
        return None
    rnd, r = call.ra.rnd, call.ra.r
    rplan = None if call.nearest_even else cpu.round_f32_plan(ep, 1, rnd, r)
    if not call.nearest_even and (rplan is None or len(rplan) != 12 or call.idxmap.size > 1):
        return None  # (13 constants: 2**(m - emin) beyond float32's range, the general kernel)
    cplan = cpu.code_plan(ep) if call.want == 2 else None
    if call.want == 2 and cplan is None:
        return None
    keys = (call.ra.k0, call.ra.k1, call.ra.k2)
    return cpu_blocks.sel_args(rnd, rplan, keys, call.ra.offset, r, call.want, cplan)


def _values_buffer(call, dtype, dest):
    """Where the kernels write the values: ``dest`` (flat) when given, else a new array (or
    ``(1,)`` for codes only)."""
    if dest is not None:
        return dest.reshape(-1)
    return np.empty(call.R * call.n if call.want & 1 else 1, dtype=dtype)


def _run_nv(work, fmt, call, ts, out_dtype, dest=None):
    """NVFP4-style (two-level) blocks of the float32 rows ``work``: the values (or ``(1,)``)."""
    from qemu_arrays.formats.block_cores import nv_scale_nan
    from qemu_arrays.kernels import blocks as cpu_blocks
    from qemu_arrays.kernels import elements as cpu

    R, n, nb, bs = call.R, call.n, call.nb, call.bs
    odt = np.float32 if out_dtype.itemsize <= 4 else np.float64
    out = _values_buffer(call, odt, dest)
    ep, sp_ = fmt.element.params(), fmt.scale.params()
    plan = cpu.rne_f32_plan(ep, 1)
    vec = _vec_ok(plan, call, out)
    ea = _fast_args(ep, plan, call, out)
    plan = _NO_PLAN if plan is None else plan

    def general(f, o, rows, cols, sc, codes=call.codes, idxmap=call.idxmap):
        cpu_blocks.nv_kernel(
            f.view(np.uint32), rows, cols, bs, ep, sp_, np.float32(ts), call.ra, idxmap,
            call.want, int(_FAST_PATH), o, codes, sc, int(vec), plan,
        )  # fmt: skip

    splan = cpu_blocks.rne_scale_plan(sp_) if ea is not None else None
    splan32 = cpu_blocks.rne_scale_plan32(sp_) if ea is not None else None
    flat = work.reshape(-1)
    todo = 1  # blocks left to the general kernel (all, without the fast one)
    if splan is not None and splan32 is not None and n >= bs:
        todo = cpu_blocks.nv_f32_rne(
            flat.view(np.uint32), out, R * (n // bs), n, nb, bs, float(fmt.element.max),
            np.float32(ts), splan, splan32, int(nv_scale_nan(sp_)), plan, call.scodes, ea,
            call.codes,
        )  # fmt: skip
    if todo:  # blocks the fast kernel leaves to the general one: the whole array there
        general(flat, out, R, n, call.scodes)
    else:
        _short_last_blocks(work, out, call, general)
    return out


def _run_mx(work, fmt, call, dest=None):
    """MX blocks of the float32 or float64 rows ``work``: the values (or ``(1,)``)."""
    from qemu_arrays.kernels import blocks as cpu_blocks
    from qemu_arrays.kernels import elements as cpu

    R, n, nb, bs = call.R, call.n, call.nb, call.bs
    flat = work.reshape(-1)
    xb = flat.view(np.int64 if work.dtype == np.float64 else np.uint32)
    in_e, in_m = (11, 52) if work.dtype == np.float64 else (8, 23)
    out = _values_buffer(call, work.dtype, dest)
    sp = mx_scale_plan(fmt, in_e, in_m)
    ie = int_element(fmt)
    ep = fmt.element.params() if ie.is_int == 0 else (0,) * 10
    plan = cpu.rne_f32_plan(ep, 1) if ie.is_int == 0 and in_m == 23 else None
    vec = _vec_ok(plan, call, out)
    ea = _fast_args(ep, plan, call, out)
    plan = _NO_PLAN if plan is None else plan

    def general(f, o, rows, cols, scs, codes=call.codes, idxmap=call.idxmap):
        b = f.view(xb.dtype)
        cpu_blocks.mx_kernel(
            b, rows, cols, bs, ep, sp, ie, call.ra, idxmap, call.want, int(_FAST_PATH),
            o, o.view(b.dtype), codes, scs, int(vec), plan,
        )  # fmt: skip

    consts = cpu_blocks.block_exponent_consts(sp.mprec, sp.maxsig) if ea is not None else None
    todo = 1  # blocks left to the general kernel (all, without the fast one)
    if consts is not None and n >= bs:
        todo = cpu_blocks.mx_f32_rne(
            xb, out, R * (n // bs), n, nb, bs, sp, consts[0], consts[1], plan, call.scodes, ea,
            call.codes,
        )  # fmt: skip
    if todo:  # the whole array through the general kernel
        general(flat, out, R, n, call.scodes)
    else:
        _short_last_blocks(work, out, call, general)
    return out


def _run(arr, fmt, axis, rounding, keys, offset, r, want, tensor_scale, out_dtype, dest=None):
    """The kernel call: ``(values or None, codes or None, scale codes, tensor scale)``.

    ``dest``: the caller's ``out=`` array, which the kernels then write directly (C-contiguous,
    of the working dtype, blocks along its last axis, sharing no memory with ``arr``: see
    :func:`_direct_out`)."""
    moved = np.moveaxis(arr, axis, -1)
    shape_m = moved.shape
    n = shape_m[-1]
    size = arr.size
    R = size // n if n else 0
    bs = fmt.block_size
    nb = -(-n // bs)
    if rounding is Rounding.STOCHASTIC and axis != arr.ndim - 1:
        idxmap = np.ascontiguousarray(
            np.moveaxis(np.arange(size, dtype=np.int64).reshape(arr.shape), axis, -1)
        ).reshape(-1)
    else:
        idxmap = np.zeros(1, dtype=np.int64)
    cdt = np.uint8 if fmt.bits <= 8 else np.uint16
    call = _Call(
        R, n, nb, bs, RoundingArgs(int(rounding), *keys, int(offset), r), idxmap, want,
        rounding is Rounding.NEAREST_EVEN, np.empty(size if want & 2 else 1, dtype=cdt),
        np.empty(R * nb, dtype=np.uint8),
    )  # fmt: skip
    ts = None
    if fmt.tensor_scale:
        ts = (
            tensor_scale_of(arr, fmt) if tensor_scale is None else _check_tensor_scale(tensor_scale)
        )
        work = np.ascontiguousarray(moved, dtype=np.float32)
        out = _run_nv(work, fmt, call, ts, out_dtype, dest)
    else:
        dt = np.float64 if moved.dtype == np.float64 else np.float32
        out = _run_mx(np.ascontiguousarray(moved, dtype=dt), fmt, call, dest)
    vals = codes = None
    if want & 1 and dest is not None:
        vals = dest
    elif want & 1:
        vals = np.moveaxis(out.reshape(shape_m), -1, axis)
        vals = cast_float(np.ascontiguousarray(vals), out_dtype)
    if want & 2:
        codes = np.ascontiguousarray(np.moveaxis(call.codes.reshape(shape_m), -1, axis))
    scales = np.moveaxis(call.scodes.reshape((*shape_m[:-1], nb)), -1, axis)
    return vals, codes, np.ascontiguousarray(scales), ts


def run(x, req: Request):
    """``quantize``/``encode``/``decode`` of a NumPy array in a block format."""
    if req.op is Op.DECODE:
        return decode_block(x, req)
    arr = as_float_array(x)
    fmt = req.fmt
    axis = _check_block_axis(arr, req.axis)
    out_dtype = arr.dtype
    if req.via_float32 and arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    itemsize = 4 if (arr.dtype.itemsize <= 4 or fmt.tensor_scale) else 8
    r, *keys = random_args(req, itemsize)
    rnd, off = req.rounding, kernel_offset(req.offset)
    if req.op is Op.ENCODE:
        _, codes, scales, ts = _run(arr, fmt, axis, rnd, keys, off, r, 2, req.scale, arr.dtype)
        return Encoded(
            codes=codes,
            scales=scales,
            zero_points=None,
            tensor_scale=None if ts is None else np.float32(ts),
            axis=axis,
            block_size=fmt.block_size,
        )
    out = check_out(req.out, arr.shape, out_dtype)
    dest = out if _direct_out(out, arr, axis, fmt) else None
    vals, _, _, _ = _run(arr, fmt, axis, rnd, keys, off, r, 1, req.scale, out_dtype, dest)
    if out is not None:
        if dest is None:
            out[...] = vals
        return out
    return vals


def _direct_out(out, arr, axis, fmt):
    """Whether the kernels can write ``out=`` directly: C-contiguous, float32 (float64 for MX
    from float64 input), blocks along its last axis, and no memory shared with the input (the
    general kernel may read the input again after the fast one wrote)."""
    if out is None or not out.flags.c_contiguous or axis != arr.ndim - 1:
        return False
    want = np.float64 if (arr.dtype == np.float64 and not fmt.tensor_scale) else np.float32
    return out.dtype == want and not np.may_share_memory(out, arr)


def _element_values(codes, fmt):
    """float64 values of the block format's element ``codes`` (without the scale)."""
    el = fmt.element
    if isinstance(el, FloatFormat):
        return decode_table(el)[np.asarray(codes).astype(np.intp)]
    k = np.asarray(codes).astype(np.int64)
    k = np.where(k >> (el.bits - 1), k - (1 << el.bits), k)
    return np.ldexp(k.astype(np.float64), -fmt.element_fraction_bits)


def block_values(codes, scale_codes, fmt, tensor_scale=None):
    """float64 values of element ``codes`` with per-element ``scale_codes`` (same shape)."""
    ev = _element_values(codes, fmt)
    sv = decode_table(fmt.scale)[np.asarray(scale_codes).astype(np.intp)]
    if fmt.tensor_scale:
        ts = np.float64(_check_tensor_scale(1.0 if tensor_scale is None else tensor_scale))
        with np.errstate(over="ignore"):
            d = (sv * ts).astype(np.float32).astype(np.float64)
        return ev * d
    return ev * sv  # exact: a power of two times a short significand


def decode_block(codes, req: Request):
    """Values of block-format codes: ``element value * block scale (* tensor scale)``.

    ``req.scale`` holds the scale codes (and ``req.axis``, ``req.tensor_scale`` as needed).
    The product is formed exactly and rounded once to the dtype. A NaN block scale gives NaN for
    the whole block; NVFP4's element times the float32 ``d = float32(s_b * tensor_scale)``.
    Computed chunk by chunk: the temporaries stay chunk-sized whatever the array's size.
    """
    fmt, scale, tensor_scale = req.fmt, req.scale, req.tensor_scale
    # uint8 codes of a float element format: the fast kernel checks their range in its pass
    deferred = _FAST_PATH and _element_plan32(fmt) is not None
    deferred = deferred and isinstance(codes, np.ndarray) and codes.dtype == np.uint8
    codes = codes if deferred else check_codes(codes, fmt.bits, repr(fmt.name))
    dtype = check_float_dtype(req.dtype)
    axis = _check_block_axis(codes, req.axis)
    scale = check_codes(scale, fmt.scale.bits, f"the scale format {fmt.scale.name}", "scale")
    n = codes.shape[axis]
    nb = -(-n // fmt.block_size)
    want_shape = tuple(nb if d == axis else s for d, s in enumerate(codes.shape))
    if scale.shape != want_shape:
        msg = (
            f"scale codes have shape {scale.shape}, expected {want_shape} for codes of shape "
            f"{codes.shape} with blocks of {fmt.block_size} along axis {axis}; hint: pass the "
            "Encoded tuple from encode"
        )
        raise ValueError(msg)
    if fmt.tensor_scale:
        tensor_scale = _check_tensor_scale(1.0 if tensor_scale is None else tensor_scale)
    out = np.empty(codes.shape, dtype=dtype)
    if _decode_fast(codes, scale, fmt, tensor_scale, axis, out):
        return out
    if deferred:
        codes = check_codes(codes, fmt.bits, repr(fmt.name))
    flat, flat_out = codes.reshape(-1), out.reshape(-1)
    for lo, hi in chunks(flat.size):
        sc = group_values(scale, codes.shape, axis, fmt.block_size, lo, hi)
        flat_out[lo:hi] = cast_float(block_values(flat[lo:hi], sc, fmt, tensor_scale), dtype)
    return out


def _exact_in(values, dtype):
    """``values`` (float64) in ``dtype``, or None when one of them does not convert exactly."""
    with np.errstate(over="ignore"):
        v = values.astype(dtype)
    same = (v.astype(np.float64) == values) | (np.isnan(v) & np.isnan(values))
    return v if bool(same.all()) else None


def _decode_fast(codes, scale, fmt, tensor_scale, axis, out) -> bool:
    """Decode uint8 codes with blocks along the last axis into float32 or float64 ``out`` in
    one kernel pass: the block's factor (the scale, or NVFP4's ``d = float32(s_b *
    tensor_scale)``) from a table of every scale code, the element value by arithmetic on
    32-bit words for float element formats (``kernels.blocks.decode_blocks32``, which also
    checks the codes' range: unchecked uint8 codes may come here) or from a table
    (``decode_blocks``), their product rounded once, as :func:`block_values` then the cast give
    (both hold their values exactly, checked; the exact product of the two fits float64).
    False, having written nothing, where it does not apply."""
    from qemu_arrays.kernels import blocks as cpu_blocks

    if not (
        _FAST_PATH
        and out.dtype in (np.float32, np.float64)
        and axis == codes.ndim - 1
        and codes.dtype == np.uint8
        and codes.flags.c_contiguous
        and codes.size
    ):
        return False
    dplan = _element_plan32(fmt)
    etab = None
    if dplan is None:
        etab = _exact_in(_element_values(np.arange(1 << fmt.bits), fmt), out.dtype)
    sv = decode_table(fmt.scale)
    if fmt.tensor_scale:
        with np.errstate(over="ignore"):
            sv = (sv * np.float64(tensor_scale)).astype(np.float32).astype(np.float64)
    dtab = _exact_in(sv, out.dtype)
    if (etab is None and dplan is None) or dtab is None:
        return False
    n = codes.shape[-1]
    sc = np.ascontiguousarray(scale, dtype=np.uint8).reshape(-1)
    args = (codes.reshape(-1), sc, codes.size // n, n, fmt.block_size)
    if dplan is None:
        cpu_blocks.decode_blocks(*args, etab, dtab, out.reshape(-1))
    elif cpu_blocks.decode_blocks32(*args, dplan, dtab, out.reshape(-1)):
        check_codes(codes, fmt.bits, repr(fmt.name))  # raises, naming a code out of range
    return True


@lru_cache(maxsize=64)
def _element_plan32(fmt):
    """``kernels.elements.decode_plan`` of the block format's element format (its float32
    value by arithmetic), or None (an integer element, or a format that plan does not cover)."""
    el = fmt.element
    if not isinstance(el, FloatFormat) or el.bits > 8:
        return None
    from qemu_arrays.kernels import elements

    table = np.asarray(cast_float(decode_table(el), np.dtype(np.float32))).view(np.uint32)
    return elements.decode_plan(el.params(), table)
