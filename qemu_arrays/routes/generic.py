"""Generic array-API implementation of ``quantize``, ``encode`` and ``decode``.

The same semantics as the numba kernels (``docs/formats.md``), written with the array-API
standard only, so that it runs on any conforming namespace (array-api-strict, JAX, CuPy, NumPy)
and inside ``jax.jit``. It is bit-exact with :mod:`qemu_arrays.formats.cores`: it reads the input's IEEE bit
pattern and applies the same integer arithmetic, element-wise with ``xp.where`` in place of the
scalar branches. Format parameters, the rounding mode and the overflow policy are Python values,
so the branches on them are taken once, at trace time.

Integers are unsigned words of ``W`` bits: ``W = 32`` for float32 (and widened 16-bit) input, so
that the code runs under JAX's default 32-bit mode, and ``W = 64`` for float64 input, for formats
whose significand does not fit 32-bit words (more than 28 mantissa bits) and for more than 32
random bits. Exponents and shifts are int32. The counter-based random bits are computed on uint32
words (``docs/formats.md``), the element index being split into two 32-bit halves.

The only things the standard lacks are bit casts between floats and unsigned integers of the same
width, and a way to know whether a JAX process has 64-bit types enabled: :func:`bitcast` and
:func:`has_int64` are the shims.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from qemu_arrays.formats import codes
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.cores import random_key
from qemu_arrays.formats.ml_dtypes_rules import installed as ml_dtypes_rules
from qemu_arrays.formats.ml_dtypes_rules import rounds_float64_via_float32
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials
from qemu_arrays.request import Op, Request, decode_request, round_request
from qemu_arrays.routes.common import seed_words
from qemu_arrays.routes.cpu_elements import decode_table
from qemu_arrays.validation import check_zero_point, code_dtype, nan_error

__all__ = ["bitcast", "decode", "encode", "has_int64", "quantize"]

M32 = 0xFFFFFFFF

# status codes (as qemu_arrays.formats.cores)
_FINITE, _INF, _NAN, _ERR = codes.FINITE, codes.INF, codes.NAN, codes.NAN_ERROR


# ---- shims -----------------------------------------------------------------------------------


def _is_jax(xp) -> bool:
    return "jax" in getattr(xp, "__name__", "")


def has_int64(xp) -> bool:
    """Whether the namespace holds 64-bit integers and floats (JAX: only with ``jax_enable_x64``)."""
    if _is_jax(xp):
        import jax

        return bool(jax.config.read("jax_enable_x64"))
    return True


def bitcast(x, dtype, xp):
    """Reinterpret the bits of ``x`` as ``dtype`` (same item size): the one non-standard shim."""
    name = getattr(xp, "__name__", "")
    if _is_jax(xp):
        import jax

        return jax.lax.bitcast_convert_type(x, dtype)
    if "array_api_strict" in name:
        host = np.from_dlpack(x)
        npdt = np.dtype(str(dtype).rsplit(".", 1)[-1])
        return xp.asarray(np.ascontiguousarray(host).view(npdt), device=x.device)
    if hasattr(x, "view"):  # numpy, cupy, torch
        if "torch" in name:
            return x.view(dtype)
        return x.view(dtype)
    msg = (
        f"no bit-cast shim for namespace {name!r}; the generic route needs one to read IEEE bits; "
        "hint: convert the array to numpy or JAX first"
    )
    raise TypeError(msg)


def exact_div(xp, a, b):
    """``a / b`` correctly rounded (IEEE). XLA rewrites a division by a broadcast value as a
    multiplication by its reciprocal (up to one ulp off); an optimization barrier on the
    broadcast divisor keeps the element-wise division."""
    if _is_jax(xp) and (len(b.shape) < len(a.shape) or b.shape != a.shape):
        import jax

        b = jax.lax.optimization_barrier(xp.broadcast_to(b, xp.broadcast_shapes(a.shape, b.shape)))
    return a / b


class _Ops:
    """Element-wise helpers on ``W``-bit unsigned words of one namespace."""

    def __init__(self, xp, W: int):
        self.xp = xp
        self.W = W
        self.U = xp.uint32 if W == 32 else xp.uint64
        self.I = xp.int32

    def u(self, v):
        """A constant word (JAX refuses Python ints beyond int32 next to uint32 arrays)."""
        return self.xp.asarray(v, dtype=self.U)

    def i(self, v):
        return self.xp.asarray(v, dtype=self.I)

    def shl(self, a, s):
        """``a << s`` with an int32 shift, clipped into [0, W-1]."""
        xp = self.xp
        return xp.bitwise_left_shift(a, xp.astype(xp.clip(s, 0, self.W - 1), self.U))

    def shr(self, a, s):
        xp = self.xp
        return xp.bitwise_right_shift(a, xp.astype(xp.clip(s, 0, self.W - 1), self.U))

    def bit_length(self, a):
        """Number of bits of each word (0 for 0), by binary search."""
        xp = self.xp
        n = xp.zeros_like(a, dtype=self.I)  # zeros_like keeps a's device
        for s in (32, 16, 8, 4, 2, 1):
            if s >= self.W:
                continue
            big = a >= self.u(1 << s)
            a = xp.where(big, a >> s, a)
            n = xp.where(big, n + s, n)
        return n + xp.astype(a, self.I)

    def to_i(self, a):
        return self.xp.astype(a, self.I)


# ---- the counter-based random bits -----------------------------------------------------------


def _mix32(xp, x):
    c1 = xp.asarray(0x7FEB352D, dtype=xp.uint32)
    c2 = xp.asarray(0x846CA68B, dtype=xp.uint32)
    x = x ^ (x >> 16)
    x = x * c1
    x = x ^ (x >> 15)
    x = x * c2
    return x ^ (x >> 16)


def traced_key(xp, seed_hi, seed_lo, stream):
    """The key words ``(k0, k1, k2)`` of docs/formats.md computed with array operations, so that
    the seed may be a traced value (``seed_hi``, ``seed_lo``: the seed's high and low 32-bit
    words as uint32 arrays; ``stream`` an int or a uint32 array)."""
    u32 = xp.uint32

    def c(v):
        return xp.asarray(v, dtype=u32)

    k0 = _mix32(xp, xp.astype(seed_lo, u32) ^ c(0x243F6A88))
    k1 = _mix32(xp, xp.astype(seed_hi, u32) ^ k0 ^ c(0x85A308D3))
    st = c(int(stream) & M32) if isinstance(stream, numbers.Integral) else xp.astype(stream, u32)
    k2 = _mix32(xp, st ^ k1 ^ c(0x13198A2E))
    return k0, k1, k2


def seed_keys(xp, seed, stream):
    """None for an int seed (the key words are then computed on the host); for an array seed
    (a JAX key, traced or not, or the seed's words) the key words as uint32 arrays."""
    if seed is None or isinstance(seed, numbers.Integral):
        return None
    hi, lo = seed_words(seed)
    return traced_key(xp, hi, lo, stream)


def random_words(xp, n, seed, stream, offset, device=None, keys=None):
    """Words 0 and 1 (uint32) of elements ``offset .. offset + n - 1`` (docs/formats.md).

    ``keys``: the key words as arrays (from :func:`traced_key`) in place of ``seed``/``stream``.
    """
    if n >= 1 << 32:
        msg = f"the generic route handles at most 2**32 - 1 elements per call, got {n}"
        raise ValueError(msg)
    k0, k1, k2 = random_key(seed, stream) if keys is None else keys
    u32 = xp.uint32

    def c(v):
        if not isinstance(v, numbers.Integral):
            return v  # a traced key word
        return xp.asarray(v, dtype=u32, device=device)

    off = int(offset)
    off_lo, off_hi = off & M32, (off >> 32) & M32
    i = xp.arange(n, dtype=u32, device=device)
    lo = i + c(off_lo)
    hi = c(off_hi) + xp.astype(lo < c(off_lo), u32)  # carry of the 32-bit addition
    h0 = _mix32(xp, lo ^ c(k2))

    def word(j):
        h = _mix32(xp, h0 ^ (hi + c((j * 0x9E3779B9) & M32)) ^ c(k1))
        return _mix32(xp, h + c(k0))

    return word(0), word(1)


def random_u(xp, n, seed, stream, offset, r, W, device=None, keys=None):
    """The ``r``-bit random integers of ``n`` consecutive elements, as ``W``-bit words."""
    w0, w1 = random_words(xp, n, seed, stream, offset, device, keys)
    if r <= 32:
        u = w0 >> (32 - r)
        return u if W == 32 else xp.astype(u, xp.uint64)
    if W != 64:
        msg = f"random_bits={r} needs 64-bit integers; hint: random_bits <= 32 or enable x64"
        raise ValueError(msg)
    a = xp.astype(w0, xp.uint64)
    b = xp.astype(w1, xp.uint64)
    return (a << (r - 32)) | (b >> (64 - r))


# ---- rounding on the bits (qemu_arrays.formats.cores, element-wise) --------------------------------------


class _Fields(NamedTuple):
    """The IEEE fields of input bits ``b`` as arrays: ``|x| = M * 2^E`` for finite ``x``."""

    sign: Any
    ef: Any
    mf: Any
    M: Any
    E: Any
    is_nan: Any
    is_inf: Any
    is_zero: Any


def _fields(o: _Ops, b, in_e, in_m) -> _Fields:
    xp = o.xp
    in_bias = (1 << (in_e - 1)) - 1
    sign = (b >> (in_e + in_m)) & o.u(1)
    ef = o.to_i((b >> in_m) & o.u((1 << in_e) - 1))
    mf = b & o.u((1 << in_m) - 1)
    top = (1 << in_e) - 1
    M = xp.where(ef == 0, mf, mf | o.u(1 << in_m))
    E = xp.where(ef == 0, o.i(1), ef) - (in_bias + in_m)
    return _Fields(
        sign, ef, mf, M, E, (ef == top) & (mf != o.u(0)), (ef == top) & (mf == o.u(0)),
        (ef == 0) & (mf == o.u(0)),
    )  # fmt: skip


def _round_up(o: _Ops, rnd, kept, rem, shift, is_pos, in_m, u, r):
    """Whether the mode rounds the magnitude ``kept`` up (``rem``: the discarded bits, ``shift``
    of them), and ``kept`` with TO_ODD's last bit set: the table of docs/formats.md."""
    xp = o.xp
    inrange = shift <= in_m + 1
    half = o.shl(o.u(1), xp.clip(shift - 1, 0, in_m))
    above = inrange & (rem > half)
    tie = inrange & (rem == half)
    nonzero = rem != o.u(0)
    odd = (kept & o.u(1)) == o.u(1)
    if rnd == Rounding.NEAREST_EVEN:
        up = above | (tie & odd)
    elif rnd == Rounding.NEAREST_AWAY:
        up = above | tie
    elif rnd == Rounding.UP:
        up = nonzero & is_pos
    elif rnd == Rounding.DOWN:
        up = nonzero & ~is_pos
    elif rnd == Rounding.STOCHASTIC:
        d = shift - r
        t = xp.where(d >= 0, o.shr(rem, xp.clip(d, 0, in_m + 1)), o.shl(rem, -d))
        up = u < t
    elif rnd in _TIE_UP:
        up = above | (tie & _TIE_UP[rnd](odd, is_pos))
    elif rnd == Rounding.AWAY_FROM_ZERO:
        up = nonzero
    elif rnd == Rounding.STOCHASTIC_EQUAL:
        up = nonzero & (u < o.u(1 << (r - 1)))
    else:
        up = xp.zeros_like(kept, dtype=xp.bool)
    if rnd == Rounding.TO_ODD:
        kept = xp.where((shift > 0) & nonzero, kept | o.u(1), kept)
    if rnd == Rounding.JAM:
        kept = xp.where(shift > 0, kept | o.u(1), kept)
    return up, kept


#: the nearest modes of issue 16: whether a tie goes up, from (odd, is_pos) boolean arrays
_TIE_UP = {
    Rounding.NEAREST_ZERO: lambda odd, pos: odd & ~odd,
    Rounding.NEAREST_ODD: lambda odd, pos: ~odd,
    Rounding.NEAREST_UP: lambda odd, pos: pos,
    Rounding.NEAREST_DOWN: lambda odd, pos: ~pos,
}


def _rounds_away(o: _Ops, rnd, is_pos, like):
    """Whether the mode rounds away from zero at the overflow threshold (docs/formats.md)."""
    xp = o.xp
    if rnd == Rounding.UP:
        return is_pos
    if rnd == Rounding.DOWN:
        return ~is_pos
    if rnd in (Rounding.TOWARD_ZERO, Rounding.TO_ODD, Rounding.JAM):
        return xp.zeros_like(is_pos, dtype=xp.bool)
    return xp.ones_like(like, dtype=xp.bool)


def _round_finite(o: _Ops, f: _Fields, in_m, p, rnd, u, r):
    """Round the finite magnitudes: ``(kept, q, is_z, ov)``, the value ``kept * 2^q``, whether it
    rounded to zero, and whether it overflows ``max``."""
    xp = o.xp
    m, emin, emax, sigmax, sub = p[0], p[1], p[2], p[3], p[4]
    fin = ~(f.is_nan | f.is_inf | f.is_zero)
    e = f.E + o.bit_length(f.M) - 1
    flush = (e < emin) if sub == 0 else xp.zeros_like(e, dtype=xp.bool)
    q = xp.where(e < emin, o.i(emin - m), e - m)
    if sub == 0:
        q = xp.where(flush, o.i(emin), q)
    shift = q - f.E
    pos = shift > 0
    kept_r = o.shr(f.M, xp.clip(shift, 0, in_m + 1))
    rem = f.M & (o.shl(o.u(1), xp.clip(shift, 0, in_m + 1)) - o.u(1))
    kept = xp.where(pos, kept_r, o.shl(f.M, -shift))
    up, kept = _round_up(o, rnd, kept, rem, shift, f.sign == o.u(0), in_m, u, r)
    kept = kept + xp.astype(pos & up, o.U)
    is_z = (kept == o.u(0)) & fin
    carry = kept == o.u(1 << (m + 1))
    kept = xp.where(carry, o.u(1 << m), kept)
    q = xp.where(carry, q + 1, q)
    if sub == 0 and m > 0:
        fl = flush & ~carry & ~is_z
        kept = xp.where(fl, o.u(1 << m), kept)
        q = xp.where(fl, o.i(emin - m), q)
    ov = ((q + m > emax) | ((q + m == emax) & (kept > o.u(sigmax)))) & ~is_z & fin
    return kept, q, is_z, ov


def _round_bits(o: _Ops, b, in_e, in_m, p, rnd, ovf, u, r, f=None):
    """Element-wise ``round_ieee_bits``: returns (status, sign, kept, q) arrays.

    ``f``: the input's fields when they are not the IEEE fields of ``b`` (a value ``M * 2^E``
    built by the scaled and block paths, ``in_m + 1`` at least the bits of ``M``); ``b`` then
    only gives the shape."""
    xp = o.xp
    m, emin, emax, sigmax, _sub, hz, sg, sp, _eb, _bias = p
    has_nan = (m > 0) if sp == Specials.IEEE else sp != Specials.FINITE
    has_inf = sp in (Specials.IEEE, Specials.P3109)
    neg_zero = sg == 1 and hz == 1 and sp not in (Specials.FNUZ, Specials.P3109)
    if f is None:
        f = _fields(o, b, in_e, in_m)
    sign, is_pos = f.sign, f.sign == o.u(0)
    kept, q, is_z, ov = _round_finite(o, f, in_m, p, rnd, u, r)
    away = _rounds_away(o, rnd, is_pos, b)
    # the special result of an overflow that rounds away, or of an infinite input
    if ovf != Overflow.SATURATE and has_inf:
        sp_status = _INF
    elif ovf != Overflow.SATURATE and has_nan:
        sp_status = _NAN
    else:
        sp_status = _FINITE
    small_kept, small_q = (0, 0) if hz == 1 else (1 << m, emin - m)
    status = xp.full_like(b, _FINITE, dtype=o.I)  # on b's device
    sgn = sign
    # finite non-zero inputs
    sat = ov & ~away
    spc = ov & away
    if sp_status != _FINITE:
        status = xp.where(spc, o.i(sp_status), status)
    else:
        sat = sat | spc
    kept = xp.where(sat, o.u(sigmax), kept)
    q = xp.where(sat, o.i(emax - m), q)
    if hz == 1:
        if not neg_zero:
            sgn = xp.where(is_z, o.u(0), sgn)
        q = xp.where(is_z, o.i(0), q)
    else:
        kept = xp.where(is_z, o.u(small_kept), kept)
        q = xp.where(is_z, o.i(small_q), q)
    if ovf == Overflow.ML_DTYPES and hz == 0 and in_e == 8 and ml_dtypes_rules().e8m0_subnormal_up:
        # ml_dtypes < 0.7 rounds float32 subnormals up to a power of two in formats without zero
        subn = (f.ef == 0) & (f.mf != o.u(0))
        if sg == 0:
            subn = subn & is_pos
        bl = o.bit_length(f.M)
        pow2 = o.shl(o.u(1), bl - 1) == f.M
        kk = xp.maximum(xp.where(pow2, f.E + bl - 1, f.E + bl), o.i(emin))
        status = xp.where(subn, o.i(_FINITE), status)
        kept = xp.where(subn, o.u(1 << m), kept)
        q = xp.where(subn, kk - m, q)
        sgn = xp.where(subn, sign, sgn)
    return _special_inputs(
        o, f, status, sgn, kept, q, p, ovf, sp_status, (small_kept, small_q), has_nan, neg_zero
    )


def _special_inputs(o: _Ops, f: _Fields, status, sgn, kept, q, p, ovf, sp_status, small,
                    has_nan, neg_zero):  # fmt: skip
    """The results of infinite, negative-into-unsigned, zero and NaN inputs (the Overflow
    table of docs/formats.md), over the finite results."""
    xp = o.xp
    m, emax, sigmax, hz, sg, sp = p[0], p[2], p[3], p[5], p[6], p[7]
    small_kept, small_q = small
    # infinite inputs: as an overflow rounding away
    status = xp.where(f.is_inf, o.i(sp_status), status)
    kept = xp.where(f.is_inf, o.u(sigmax), kept)
    q = xp.where(f.is_inf, o.i(emax - m), q)
    # negative input (finite or infinite) into an unsigned format
    if sg == 0:
        negu = (f.sign == o.u(1)) & ~f.is_nan & ~f.is_zero
        nu_status = _NAN if (ovf != Overflow.SATURATE and has_nan) else _FINITE
        status = xp.where(negu, o.i(nu_status), status)
        kept = xp.where(negu, o.u(small_kept), kept)
        q = xp.where(negu, o.i(small_q), q)
        sgn = xp.where(negu, o.u(0), sgn)
    # zero input
    if hz == 1:
        z_status, z_sign_kept = _FINITE, neg_zero
    elif ovf == Overflow.SATURATE:
        z_status, z_sign_kept = _FINITE, False
    else:
        z_status, z_sign_kept = (_NAN if has_nan else _ERR), False
    status = xp.where(f.is_zero, o.i(z_status), status)
    kept = xp.where(f.is_zero, o.u(0 if hz == 1 else small_kept), kept)
    q = xp.where(f.is_zero, o.i(0 if hz == 1 else small_q), q)
    if not z_sign_kept:
        sgn = xp.where(f.is_zero, o.u(0), sgn)
    # NaN input
    if has_nan:
        n_sign = (sp in (Specials.FNUZ, Specials.P3109)) or sg == 0
        status = xp.where(f.is_nan, o.i(_NAN), status)
        if n_sign:
            sgn = xp.where(f.is_nan, o.u(0), sgn)
    elif ovf == Overflow.ML_DTYPES and hz == 1:
        status = xp.where(f.is_nan, o.i(_FINITE), status)
        kept = xp.where(f.is_nan, o.u(0), kept)
        q = xp.where(f.is_nan, o.i(0), q)
        sgn = xp.where(f.is_nan, (o.u(1) - f.sign) if neg_zero else o.u(0), sgn)
    else:
        status = xp.where(f.is_nan, o.i(_ERR), status)
    return status, sgn, kept, q


def _ieee_bits(o: _Ops, status, sign, kept, q, out_e, out_m):
    """Element-wise ``ieee_bits``: the IEEE bit pattern (W-bit words) of rounded results."""
    xp = o.xp
    sbit = sign << (out_e + out_m)
    all_ones = (1 << out_e) - 1
    out_bias = (1 << (out_e - 1)) - 1
    inf_bits = sbit | o.u(all_ones << out_m)
    nan_bits = o.u((all_ones << out_m) | (1 << (out_m - 1)))
    bl = o.bit_length(kept)
    e_r = q + bl - 1
    mant = xp.where(bl <= out_m + 1, o.shl(kept, out_m + 1 - bl), o.shr(kept, bl - out_m - 1))
    # more mantissa bits than the output: nearest even (a carry moves to the next binade)
    sh_n = bl - out_m - 1
    rem_n = kept & (o.shl(o.u(1), sh_n) - o.u(1))
    half_n = o.shl(o.u(1), sh_n - 1)
    up_n = (sh_n > 0) & ((rem_n > half_n) | ((rem_n == half_n) & ((mant & o.u(1)) == o.u(1))))
    mant = mant + xp.astype(up_n, o.U)
    carry = (mant == o.u(1 << (out_m + 1))) & (e_r >= 1 - out_bias)
    mant = xp.where(carry, mant >> 1, mant)
    e_r = xp.where(carry, e_r + 1, e_r)
    field = xp.astype(xp.clip(e_r + out_bias, 0, all_ones), o.U)
    normal = sbit | (field << out_m) | (mant - o.u(1 << out_m))
    sh = q - (1 - out_bias - out_m)
    s2 = -sh
    mant_s = o.shr(kept, s2)
    rem = kept & (o.shl(o.u(1), s2) - o.u(1))
    half = o.shl(o.u(1), s2 - 1)
    rup = (s2 < o.W) & ((rem > half) | ((rem == half) & ((mant_s & o.u(1)) == o.u(1))))
    mant_s = xp.where(s2 >= o.W, o.u(0), mant_s) + xp.astype(rup, o.U)
    subn = xp.where(sh >= 0, sbit | o.shl(kept, sh), sbit | mant_s)
    res = xp.where(e_r >= 1 - out_bias, normal, subn)
    res = xp.where(e_r > all_ones - 1 - out_bias, inf_bits, res)
    res = xp.where(kept == o.u(0), sbit, res)
    res = xp.where(status == _INF, inf_bits, res)
    return xp.where(status >= _NAN, nan_bits, res)


def _format_code(o: _Ops, status, sign, kept, q, p):
    """Element-wise ``format_code``: the format's bit patterns (W-bit words)."""
    xp = o.xp
    m, emin, _emax, _sigmax, _sub, _hz, sg, sp, eb, bias = p
    mag_bits = eb + m
    sbit = (sign << mag_bits) if sg == 1 else xp.zeros_like(sign)
    all_mag = (1 << mag_bits) - 1
    if sp in (Specials.FNUZ, Specials.P3109):
        nan_code = o.u(1 << mag_bits)
    elif sp == Specials.IEEE and m > 0:
        nan_code = sbit | o.u((((1 << eb) - 1) << m) | (1 << (m - 1)))
    else:
        nan_code = sbit | o.u(all_mag)
    inf_code = sbit | o.u(all_mag if sp == Specials.P3109 else ((1 << eb) - 1) << m)
    field = xp.astype(xp.clip(q + (m + bias), 0, (1 << eb) - 1), o.U)
    normal = sbit | (field << m) | (kept - o.u(1 << m))
    res = xp.where(kept >= o.u(1 << m), normal, sbit | kept)
    res = xp.where(status == _INF, inf_code, res)
    return xp.where(status >= _NAN, nan_code, res)


# ---- integer formats -------------------------------------------------------------------------


def _round_int(xp, v, qlo, qhi, rnd, u, r, F, K_dt, lim):
    """Element-wise ``round_int_value`` of the quotient ``v`` (dtype ``F``): (error, k)."""
    err = xp.isnan(v)
    neg = v < 0
    a = xp.abs(v)
    a = xp.where(err, xp.asarray(0.0, dtype=F), a)
    a = xp.clip(a, 0.0, float(lim))  # beyond lim every grid clamps; the clip keeps k exact
    K = xp.floor(a)
    f = a - K
    k = xp.astype(K, K_dt)
    zero = xp.asarray(0.0, dtype=F)
    if rnd == Rounding.NEAREST_EVEN:
        up = (f > 0.5) | ((f == 0.5) & ((k & 1) == 1))
    elif rnd == Rounding.NEAREST_AWAY:
        up = f >= 0.5
    elif rnd == Rounding.UP:
        up = (f > zero) & ~neg
    elif rnd == Rounding.DOWN:
        up = (f > zero) & neg
    elif rnd == Rounding.STOCHASTIC:
        t = xp.astype(xp.floor(f * float(2.0**r)), u.dtype)
        up = u < t
    elif rnd in _TIE_UP:
        up = (f > 0.5) | ((f == 0.5) & _TIE_UP[rnd]((k & 1) == 1, ~neg))
    elif rnd == Rounding.AWAY_FROM_ZERO:
        up = f > zero
    elif rnd == Rounding.STOCHASTIC_EQUAL:
        up = (f > zero) & (u < xp.asarray(1 << (r - 1), dtype=u.dtype))
    else:
        up = xp.zeros_like(v, dtype=xp.bool)
    if rnd == Rounding.TO_ODD:
        k = xp.where(f > zero, k | 1, k)
    if rnd == Rounding.JAM:  # the float64 quotient's grid is finer than 1 below 2**52
        k = xp.where((a > zero) & (a < float(2**52)), k | 1, k)
    k = k + xp.astype(up, K_dt)
    k = xp.where(neg, -k, k)
    k = xp.clip(k, qlo, qhi)
    return err, k


def _pow2(xp, n, fdt):
    """``2.0 ** n`` for an int32 array ``n`` inside ``fdt``'s normal range, built on the exponent
    bits (no arithmetic that a flush-to-zero mode could change)."""
    if fdt == xp.float32:
        return bitcast(xp.astype(n + 127, xp.uint32) << 23, fdt, xp)
    return bitcast(xp.astype(n + 1023, xp.uint64) << 52, fdt, xp)


def _exponent(xp, v, fdt):
    """The exponent ``floor(log2 v)`` of positive normal ``v``, as int32, from its bits."""
    if fdt == xp.float32:
        return xp.astype((bitcast(v, xp.uint32, xp) >> 23) & 0xFF, xp.int32) - 127
    return xp.astype((bitcast(v, xp.uint64, xp) >> 52) & 0x7FF, xp.int32) - 1023


def _split_scale(scale):
    """``(s_m, s_e)`` with ``scale = s_m * 2**s_e`` and ``1 <= s_m < 2`` (host, exact)."""
    m, e = math.frexp(float(scale))
    return 2.0 * m, e - 1


#: beyond these exponents of ``x / scale`` the quotient is replaced by a stand-in (see _quotient)
_Q_LO, _Q_HI = -118, 64


def _quotient(xp, work, scale, fdt):
    """``work / scale`` as the NumPy route's kernels compute it (the quotient in ``fdt``), from the
    bits of ``work``: XLA on CPU flushes subnormal operands and results to zero, so neither a
    division of a subnormal ``x`` nor one by a subnormal ``scale`` can be left to it.

    ``x = ±sig 2^E`` exactly and ``scale = s_m 2^s_e`` (``1 <= s_m < 2``), so ``x / scale =
    ±(sig / s_m) 2^(E - s_e)``: ``sig / s_m`` is a division of normal numbers, correctly rounded as
    the whole quotient is, and the power of two is applied on the exponent. Where that exponent
    is below ``_Q_LO`` (``|x / scale| < 2^-65``) only the sign and whether the float64 quotient
    is zero decide the integer (under every rounding mode, ``random_bits <= 62``), so a stand-in
    ``±2^-100`` (or ±0 where NumPy's quotient underflows to zero) takes its place; above
    ``_Q_HI`` every grid clamps."""
    if work.dtype == xp.float32:
        udt, in_e, in_m = xp.uint32, 8, 23
    else:
        udt, in_e, in_m = xp.uint64, 11, 52
    in_bias = (1 << (in_e - 1)) - 1
    b = bitcast(xp.reshape(work, (-1,)), udt, xp)
    neg = (b >> (in_e + in_m)) == xp.asarray(1, dtype=udt)
    ef = xp.astype((b >> in_m) & ((1 << in_e) - 1), xp.int32)
    mf = b & xp.asarray((1 << in_m) - 1, dtype=udt)
    sig = xp.where(ef == 0, mf, mf | xp.asarray(1 << in_m, dtype=udt))
    E = xp.where(ef == 0, 1 - in_bias - in_m, ef - in_bias - in_m)
    s_m, s_e = _split_scale(scale)
    sig_f = xp.astype(sig, fdt)  # exact: sig has at most 24 (float32) or 53 bits
    w = sig_f / xp.asarray(s_m, dtype=fdt)
    n = E - s_e
    v = w * _pow2(xp, xp.clip(n, _Q_LO, _Q_HI), fdt)
    # the tiny quotients: NumPy's float64 quotient is zero iff |x / scale| <= 2^-1075
    ew = _exponent(
        xp, xp.where(sig == xp.asarray(0, dtype=udt), xp.asarray(1.0, dtype=fdt), w), fdt
    )
    t = ew + n
    edge = sig_f <= xp.asarray(s_m, dtype=fdt) * _pow2(xp, xp.clip(ew, -60, 60), fdt)
    zero = (sig == xp.asarray(0, dtype=udt)) | (t < -1075) | ((t == -1075) & edge)
    tiny = xp.where(zero, xp.asarray(0.0, dtype=fdt), xp.asarray(2.0**-100, dtype=fdt))
    v = xp.where(n < _Q_LO, tiny, v)
    v = xp.where(neg, -v, v)
    special = ef == (1 << in_e) - 1
    inf = xp.where(neg, xp.asarray(-math.inf, dtype=fdt), xp.asarray(math.inf, dtype=fdt))
    nan = xp.asarray(math.nan, dtype=fdt)
    return xp.where(special, xp.where(mf == xp.asarray(0, dtype=udt), inf, nan), v)


def _int_values(xp, k, scale, dtype):
    """The values ``k * scale`` (``k`` an integer array) in float ``dtype``: the float64 product
    (exact when ``scale`` is a power of two) rounded once to ``dtype`` on the bits, so that no
    flush-to-zero mode changes a subnormal result."""
    wide = has_int64(xp)
    fdt = xp.float64 if wide else xp.float32
    s_m, s_e = _split_scale(scale)
    neg = k < 0
    a = xp.where(neg, -k, k)
    if s_m == 1.0:  # a power of two: k * 2^s_e exactly
        udt = xp.uint64 if wide else xp.uint32
        kept = xp.astype(a, udt)
        q = xp.zeros_like(a, dtype=xp.int32) + s_e
    else:  # the float64 product's significand (a normal number: |k| >= 1, 1 < s_m < 2)
        udt = xp.uint64
        p = xp.astype(a, fdt) * xp.asarray(s_m, dtype=fdt)
        pb = bitcast(p, udt, xp)
        ep = xp.astype((pb >> 52) & 0x7FF, xp.int32)
        kept = (pb & xp.asarray((1 << 52) - 1, dtype=udt)) | xp.asarray(1 << 52, dtype=udt)
        kept = xp.where(a == 0, xp.asarray(0, dtype=udt), kept)
        q = ep - 1075 + s_e
    W = 64 if udt == xp.uint64 else 32
    o = _Ops(xp, W)
    out_e, out_m = {2: (5, 10), 4: (8, 23), 8: (11, 52)}[_itemsize(xp, dtype)]
    if _itemsize(xp, dtype) == 2 and "bfloat16" in str(dtype):
        out_e, out_m = 8, 7
    status = xp.zeros_like(a, dtype=xp.int32) + _FINITE
    bits = _ieee_bits(o, status, xp.astype(neg, udt), kept, q, out_e, out_m)
    word = {2: xp.uint16, 4: xp.uint32, 8: xp.uint64}[_itemsize(xp, dtype)]
    return bitcast(xp.astype(bits, word), dtype, xp)


def _itemsize(xp, dtype) -> int:
    if dtype == xp.float32:
        return 4
    if dtype == getattr(xp, "float64", None):
        return 8
    return 2


def _random(xp, n, rnd, seed, stream, offset, r, W, dev, rbits=None, shape=None):
    """The elements' ``r``-bit integers ``u`` of the rule ``u < floor(f 2^r)``, or None for a
    deterministic mode: the counter-based bits, or the caller's ``rbits`` turned into that rule
    (``F + b >= 2^r`` is ``2^r - 1 - b < F``: the carry rule of PTX ``cvt.rs``)."""
    if not rnd.stochastic:
        return None
    if rbits is None:  # a traced seed (JAX key) gives its key words as arrays
        keys = seed_keys(xp, seed, stream)
        return random_u(xp, n, seed if keys is None else 0, stream, offset, r, W, dev, keys)
    U = xp.uint32 if W == 32 else xp.uint64
    rb = rbits if hasattr(rbits, "__array_namespace__") else xp.asarray(rbits)
    rb = xp.asarray(rb, device=dev) if dev is not None and not _is_jax(xp) else xp.asarray(rb)
    rb = xp.reshape(xp.broadcast_to(rb, tuple(shape)), (-1,))
    mask = (1 << r) - 1
    low = xp.astype(rb & xp.asarray(mask, dtype=rb.dtype), U)
    return xp.asarray(mask, dtype=U) - low


def _int_path(xp, x, fmt, rnd, seed, stream, offset, r, scale, zero_point, want, W, rbits=None):
    wide = has_int64(xp)
    F = xp.float64 if wide else xp.float32
    K_dt = xp.int64 if wide else xp.int32
    if not wide and (fmt.bits > 24 or r > 32):
        msg = (
            f"{fmt.name} with random_bits={r} needs 64-bit types on this namespace; hint: "
            "jax.config.update('jax_enable_x64', True)"
        )
        raise ValueError(msg)
    scale, z = _int_scale_args(xp, fmt, scale, zero_point, x, F, K_dt)
    if not wide:
        _check_pow2_scale(scale)
    dev = getattr(x, "device", None)
    n = _size(x)
    u = _random(xp, n, rnd, seed, stream, offset, r, 64 if wide else 32, dev, rbits, x.shape)
    qlo = fmt.min - z
    qhi = fmt.max - z
    lim = 1 << 62 if wide else 1 << 30
    err, k = _round_int(xp, _quotient(xp, x, scale, F), qlo, qhi, rnd, u, r, F, K_dt, lim)
    if want == "value":
        return err, _int_values(xp, k, scale, x.dtype)
    code = k + z
    code = code & ((1 << fmt.bits) - 1)
    return err, code


def _check_pow2_scale(scale):
    if isinstance(scale, numbers.Real):
        mant, _ = np.frexp(float(scale))
        if mant == 0.5:
            return
    msg = (
        f"scale={scale!r}: without 64-bit types (JAX's default mode) the integer quotient is "
        "computed in float32, which is exact only for a scalar power-of-two scale; hint: "
        "jax.config.update('jax_enable_x64', True) or use a power-of-two scale"
    )
    raise ValueError(msg)


def _int_scale_args(xp, fmt, scale, zero_point, x, F, K_dt):
    if scale is None:
        msg = (
            f"integer format {fmt.name!r} needs scale= (the step between integer codes), e.g. "
            "scale=0.05"
        )
        raise ValueError(msg)
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        if not (np.isfinite(scale) and scale > 0):
            msg = f"scale must be finite and > 0, got {scale!r}"
            raise ValueError(msg)
        s = float(scale)  # applied on the bits (_quotient, _int_values): no subnormal flush
    else:
        msg = (
            f"scale must be a positive number on the generic route, got {type(scale).__name__}; "
            "hint: per-element scales are supported for numpy and PyTorch CPU input"
        )
        raise TypeError(msg)
    if zero_point is None:
        z = 0
    elif isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        z = int(check_zero_point(zero_point, fmt))
    else:
        msg = f"zero_point must be an int on the generic route, got {zero_point!r}"
        raise TypeError(msg)
    return s, z


# ---- entry points ----------------------------------------------------------------------------


def _size(x):
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


def _plan(xp, x, fmt, random_bits, via_float32):
    """(work array, its float dtype, exponent bits, mantissa bits, W, default r)."""
    dt = x.dtype
    f32 = xp.float32
    f64 = getattr(xp, "float64", None)
    if dt == f32:
        work = x
    elif f64 is not None and dt == f64:
        work = xp.astype(x, f32) if via_float32 else x
    elif _is_16bit(xp, dt):
        work = xp.astype(x, f32)
    else:
        msg = (
            f"x has dtype {dt}, must be float16, bfloat16, float32 or float64; "
            "hint: cast with xp.astype(x, xp.float32)"
        )
        raise TypeError(msg)
    is64 = f64 is not None and work.dtype == f64
    in_e, in_m = (11, 52) if is64 else (8, 23)
    r = (53 if is64 else 32) if random_bits is None else int(random_bits)
    W = 64 if is64 else 32
    if isinstance(fmt, FloatFormat) and (fmt.mantissa_bits > 28 or fmt.bits > 32):
        W = 64
    if r > 32:
        W = 64
    if W == 64 and not has_int64(xp):
        msg = (
            f"format {fmt.name} with random_bits={r} needs 64-bit integers, which this JAX "
            "process has disabled; hint: jax.config.update('jax_enable_x64', True)"
        )
        raise ValueError(msg)
    return work, in_e, in_m, W, r


def _is_16bit(xp, dt):
    if dt == getattr(xp, "float16", None):
        return True
    return "bfloat16" in str(dt)


def _raise_if_error(xp, err, fmt, overflow):
    """Raise the ValueError of a NaN without a NaN code, unless the arrays are being traced."""
    if _is_tracing(err):
        return
    if bool(xp.any(err)):
        raise nan_error(fmt, overflow)


def _is_tracing(a) -> bool:
    mod = type(a).__module__
    if not mod.startswith("jax"):
        return False
    import jax

    return isinstance(a, jax.core.Tracer)


def _float_core(
    xp, x, fmt, rounding, overflow, seed, stream, offset, random_bits, via_float32, rbits=None
):
    work, in_e, in_m, W, r = _plan(xp, x, fmt, random_bits, via_float32)
    o = _Ops(xp, W)
    flat = xp.reshape(work, (-1,))
    b = bitcast(flat, xp.uint32 if in_e == 8 else xp.uint64, xp)
    if W == 64 and in_e == 8:
        b = xp.astype(b, xp.uint64)
    n = _size(work)
    dev = getattr(x, "device", None)
    u = _random(xp, n, rounding, seed, stream, offset, r, W, dev, rbits, x.shape)
    st, sign, kept, q = _round_bits(o, b, in_e, in_m, fmt.params(), rounding, overflow, u, r)
    return o, work, in_e, in_m, st, sign, kept, q


def _namespace(x, xp):
    if xp is None:
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
    return xp


def run(x, req: Request):
    """The route's entry: ``quantize``/``encode``/``decode`` of ``x`` in its own namespace."""
    xp = _namespace(x, None)
    if req.op is Op.DECODE:
        return _decode(xp, x, replace(req, dtype=_xp_dtype(xp, req.dtype)))
    return (_quantize if req.op is Op.QUANTIZE else _encode)(xp, x, req)


def _xp_dtype(xp, dtype):
    """The namespace's dtype of a dtype named by NumPy or PyTorch (default float32)."""
    if dtype is None:
        return xp.float32
    name = str(np.dtype(dtype)) if not str(dtype).startswith("torch.") else str(dtype)[6:]
    found = getattr(xp, name, None)
    if found is None:
        msg = f"dtype {dtype!r} has no counterpart in namespace {xp.__name__}"
        raise TypeError(msg)
    return found


def quantize(
    x, format, *, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.OWN, seed=None, stream=0,
    offset=0, random_bits=None, scale=None, zero_point=None, via_float32=False, xp=None,
):  # fmt: skip
    """:func:`qemu_arrays.quantize` on any array-API array, with the namespace's own operations.

    Same semantics and bits as the numba kernels. Works under ``jax.jit`` (float32 input in
    JAX's default 32-bit mode; float64 input needs ``jax_enable_x64``). Inside a traced
    function a NaN that the format cannot hold gives NaN instead of raising.
    """
    req = _element_request(
        Op.QUANTIZE, format, rounding, overflow, seed, stream, offset, random_bits, scale,
        zero_point, via_float32,
    )  # fmt: skip
    return _quantize(_namespace(x, xp), x, req)


def encode(
    x, format, *, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.OWN, seed=None, stream=0,
    offset=0, random_bits=None, scale=None, zero_point=None, via_float32=False, xp=None,
):  # fmt: skip
    """:func:`qemu_arrays.encode` on any array-API array (see :func:`quantize`)."""
    req = _element_request(
        Op.ENCODE, format, rounding, overflow, seed, stream, offset, random_bits, scale,
        zero_point, via_float32,
    )  # fmt: skip
    return _encode(_namespace(x, xp), x, req)


def _element_request(op, format, rounding, overflow, seed, stream, offset, random_bits, scale,
                     zero_point, via_float32) -> Request:  # fmt: skip
    req = round_request(
        op, format, rounding=rounding, overflow=overflow, seed=seed, stream=stream,
        offset=offset, random_bits=random_bits, scale=scale, zero_point=zero_point,
        via_float32=via_float32, axis=None, block_size=None, scale_format=None, symmetric=None,
        percentile=None,
    )  # fmt: skip
    if req.is_block:
        msg = (
            f"format {req.fmt.name!r} is a block format; the generic route takes element formats "
            "(qemu_arrays.quantize runs block formats on the host)"
        )
        raise TypeError(msg)
    return req


def _via_float32(req: Request) -> bool:
    return req.via_float32 or rounds_float64_via_float32(req.overflow)


def needs_scaled_path(req: Request) -> bool:
    """Whether a request is for the block or scaled paths (:mod:`.generic_blocks`,
    :mod:`.generic_scaled`) rather than this module's element formats: block formats, float
    formats with a scale, integer formats with a rule, an array scale or a granularity."""
    if req.is_block or req.is_scaled_float:
        return True
    return req.is_int and (
        req.scaled or not (req.scale is None or isinstance(req.scale, numbers.Real))
    )


def _quantize(xp, x, req: Request):
    fmt, rounding, overflow, via_float32 = req.fmt, req.rounding, req.overflow, _via_float32(req)
    seed = 0 if req.seed is None else req.seed
    if isinstance(fmt, IntFormat):
        work, _e, _m, W, r = _plan(xp, x, fmt, req.random_bits, via_float32)
        err, vals = _int_path(
            xp, work, fmt, rounding, seed, req.stream, req.offset, r, req.scale, req.zero_point,
            "value", W, req.rbits,
        )  # fmt: skip
        _raise_if_error(xp, err, fmt, overflow)
        vals = xp.where(err, xp.asarray(float("nan"), dtype=vals.dtype), vals)
        vals = _narrow(xp, xp.astype(vals, work.dtype), x.dtype)  # as the kernels: via work dtype
        return xp.reshape(vals, x.shape)
    o, work, in_e, in_m, st, sign, kept, q = _float_core(
        xp, x, fmt, rounding, overflow, seed, req.stream, req.offset, req.random_bits, via_float32,
        req.rbits,
    )  # fmt: skip
    _raise_if_error(xp, st == _ERR, fmt, overflow)
    bits = _ieee_bits(o, st, sign, kept, q, in_e, in_m)
    if in_e == 8 and o.W == 64:
        bits = xp.astype(bits, xp.uint32)
    vals = bitcast(bits, work.dtype, xp)
    return xp.reshape(xp.astype(vals, x.dtype), x.shape)


def _narrow(xp, vals, dtype):
    """float32/float64 ``vals`` rounded once (nearest-even, overflow to inf) to ``dtype`` by this
    module's own rounding, not the namespace's cast (whose rules are not ours to promise)."""
    if vals.dtype == dtype:
        return vals
    bf16 = getattr(xp, "bfloat16", None)
    name = (
        "float16"
        if dtype == xp.float16
        else ("bfloat16" if bf16 is not None and dtype == bf16 else None)
    )
    if name is None:  # a wider dtype, or float64 -> float32: the IEEE cast
        return xp.astype(vals, dtype)
    o, work, in_e, in_m, st, sign, kept, q = _float_core(
        xp, vals, get_format(name), Rounding.NEAREST_EVEN, Overflow.OWN, 0, 0, 0, None, False
    )
    bits = _ieee_bits(o, st, sign, kept, q, in_e, in_m)
    if in_e == 8 and o.W == 64:
        bits = xp.astype(bits, xp.uint32)
    return xp.astype(bitcast(bits, work.dtype, xp), dtype)  # exact: on the 16-bit grid


def _code_dtype(xp, bits):
    """The namespace's unsigned type of the width the NumPy route's ``encode`` uses."""
    return getattr(xp, code_dtype(bits).name)


def _encode(xp, x, req: Request):
    fmt, rounding, overflow, via_float32 = req.fmt, req.rounding, req.overflow, _via_float32(req)
    seed, stream, offset = (0 if req.seed is None else req.seed), req.stream, req.offset
    cdt = _code_dtype(xp, fmt.bits)
    if fmt.bits > 32 and not has_int64(xp):
        msg = f"{fmt.name} codes need 64-bit integers; hint: enable jax_enable_x64"
        raise ValueError(msg)
    if isinstance(fmt, IntFormat):
        work, _e, _m, W, r = _plan(xp, x, fmt, req.random_bits, via_float32)
        err, code = _int_path(
            xp, work, fmt, rounding, seed, stream, offset, r, req.scale, req.zero_point, "code", W,
            req.rbits,
        )  # fmt: skip
        _raise_if_error(xp, err, fmt, overflow)
        return xp.reshape(xp.astype(code, cdt), x.shape)
    o, _work, _in_e, _in_m, st, sign, kept, q = _float_core(
        xp, x, fmt, rounding, overflow, seed, stream, offset, req.random_bits, via_float32,
        req.rbits,
    )  # fmt: skip
    _raise_if_error(xp, st == _ERR, fmt, overflow)
    codes = _format_code(o, st, sign, kept, q, fmt.params())
    return xp.reshape(xp.astype(codes, cdt), x.shape)


def decode(codes, format, *, dtype=None, scale=None, zero_point=None, xp=None):
    """:func:`qemu_arrays.decode` on any array-API array of integer codes.

    ``dtype`` is a dtype of ``xp`` (default ``xp.float32``). Formats of at most 16 bits decode
    through a table of every code's value; wider formats through their bit fields.
    """
    req = decode_request(
        format, dtype=dtype, scale=scale, zero_point=zero_point, axis=None, block_size=None,
        tensor_scale=None,
    )  # fmt: skip
    return _decode(_namespace(codes, xp), codes, req)


def _decode(xp, codes, req: Request):
    fmt, dtype, scale, zero_point = req.fmt, req.dtype, req.scale, req.zero_point
    dtype = xp.float32 if dtype is None else dtype
    if not xp.isdtype(codes.dtype, "integral"):
        msg = f"codes must be an integer array, got dtype {codes.dtype}"
        raise TypeError(msg)
    dev = getattr(codes, "device", None)
    wide = has_int64(xp)
    if isinstance(fmt, IntFormat):
        F = xp.float64 if wide else xp.float32
        K_dt = xp.int64 if wide else xp.int32
        s, z = _int_scale_args(xp, fmt, scale, zero_point, codes, F, K_dt)
        if not wide:
            _check_pow2_scale(s)
        k = xp.astype(codes, K_dt) & ((1 << fmt.bits) - 1)
        if fmt.signed:
            k = xp.where(k >= (1 << (fmt.bits - 1)), k - (1 << fmt.bits), k)
        return xp.reshape(_int_values(xp, xp.reshape(k - z, (-1,)), s, dtype), codes.shape)
    if fmt.bits <= 16:
        tdt = xp.float64 if wide else xp.float32
        table = xp.asarray(decode_table(fmt).astype(np.float64 if wide else np.float32), dtype=tdt)
        if dev is not None and not _is_jax(xp):
            table = xp.asarray(table, device=dev)
        idx = xp.astype(codes, xp.int32 if not wide else xp.int64)
        vals = xp.take(table, xp.reshape(idx, (-1,)), axis=0)
        return xp.reshape(xp.astype(vals, dtype), codes.shape)
    msg = (
        f"decode of the {fmt.bits}-bit format {fmt.name!r} is not available on the generic route; "
        "hint: decode on numpy (qemu_arrays.decode(np.asarray(codes), fmt))"
    )
    raise NotImplementedError(msg)
