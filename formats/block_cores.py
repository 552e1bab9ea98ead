"""The per-block and per-element steps of the block formats (MX, NVFP4), one function per rule.

``@numba.njit`` functions of primitive integers and floats over the cores of
:mod:`qemu_arrays.formats.cores`. The CPU kernels (:mod:`qemu_arrays.kernels.blocks`) and the CUDA
kernels (:mod:`qemu_arrays.cuda_kernels.block_kernels`) call these very functions, so both compute
the same bits: the block scale (:func:`mx_scale`, :func:`nv_scale`), the element under that scale
(:func:`mx_element`, :func:`nv_element`, and their select-only nearest-even forms
:func:`mx_rne32`, :func:`nv_rne32`), NaN blocks and quotient overflow included, and the value of
a code (:func:`block_value`). The semantics are those of ``docs/blocks.md``. This module imports
no ``numba.cuda``.

Float arguments are cast to their float type again on entry: in the CUDA simulator a kernel body
is Python, and a float32 that an ``@njit`` function returns comes back to it as a Python float
(float64). The steps the CUDA kernels call directly return bits (int64), never a float32.

The format constants travel as tuples: :class:`~qemu_arrays.formats.block_plans.MxScalePlan`
(the MX scale step), :class:`~qemu_arrays.formats.block_plans.IntElement` (integer elements),
the element and scale formats' ``FormatParams``; :mod:`qemu_arrays.formats.block_plans` builds
them from a ``BlockFormat`` for the CPU and the CUDA routes alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from qemu_arrays.formats import bits as _bits
from qemu_arrays.formats import rne32 as _rne32
from qemu_arrays.formats.block_plans import IntElement, MxScalePlan
from qemu_arrays.formats.codes import (  # ScaleRule codes
    CEIL,
    CEIL_POW2,
    EVEN,
    FLOOR,
    RCEIL,
    RFLOOR,
    RHALF_UP,
    RNE,
)
from qemu_arrays.formats.cores import (
    FINITE,
    NAN,
    SATURATE,
    bit_length,
    decode_code,
    format_code,
    has_negative_zero,
    round_bits_fast,
    round_int_value,
    round_magnitude,
    round_subnormal_fast,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.round32 import round32

purge_stale_cache(__file__)

# the @intrinsic bit casts and rne32 (numba supplies their typing context: typed Any for mypy)
bits_f32: Any = _bits.bits_f32
bits_f64: Any = _bits.bits_f64
f32_bits: Any = _bits.f32_bits
f64_bits: Any = _bits.f64_bits
rne32: Any = _rne32.rne32

__all__ = [
    "CEIL",
    "CEIL_POW2",
    "EVEN",
    "FLOOR",
    "NO_RULE",
    "RCEIL",
    "RFLOOR",
    "RHALF_UP",
    "IntElement",
    "MxScalePlan",
    "block_value",
    "mx_element",
    "mx_float_general",
    "mx_rne32",
    "mx_rne32_bits",
    "mx_scale",
    "mx_subnormal_quantum",
    "nv_element",
    "nv_rne32",
    "nv_rne32_bits",
    "nv_scale",
    "nv_scale_nan",
    "nv_vec_ok",
    "pow2_f32",
    "pow2_f64",
    "shared_exponent",
    "split_bits",
    "value_bits",
]

_JIT = njit(cache=True, nogil=True)
_HOT = njit(cache=True, nogil=True, inline="always")


@_JIT
def split_bits(b, in_e, in_m):
    """(sign, M, E, special) of an IEEE bit pattern: value ``(-1)^sign * M * 2^E``.

    ``special`` is 1 for inf and NaN (M and E are then meaningless); M is 0 for zero.
    """
    in_bias = (1 << (in_e - 1)) - 1
    sign = (b >> (in_e + in_m)) & 1
    ef = (b >> in_m) & ((1 << in_e) - 1)
    mf = b & ((1 << in_m) - 1)
    if ef == (1 << in_e) - 1:
        return sign, 0, 0, 1
    if ef == 0:
        return sign, mf, 1 - in_bias - in_m, 0
    return sign, mf | (1 << in_m), ef - in_bias - in_m, 0


NO_RULE = 1 << 20
"""What :func:`shared_exponent` returns for a rule code it does not know: beyond every scale
format's range, so the block gets a NaN scale instead of another rule's scale."""


@_HOT
def _sig_cmp(M, bl, maxsig, ca, cm):
    """The sign of ``ca * sig(amax) - cm * sig(max)``, ``sig`` the significand in [1, 2) of
    ``amax = M * 2^E`` (``bl`` the bit length of ``M > 0``) and of the element maximum
    (significand integer ``maxsig``); ``ca``, ``cm`` small positive integers. ``M`` is cut to
    its top 40 bits with the rest folded into a sticky bit, which decides every comparison as
    the exact ``M`` does (the threshold has no bit that low), so nothing overflows 64 bits."""
    if bl > 40:
        sticky = (M & ((1 << (bl - 40)) - 1)) != 0
        M = (M >> (bl - 40)) | sticky
        bl = 40
    blm = bit_length(maxsig)
    a = ca * (M << (blm - 1))
    m = cm * (maxsig << (bl - 1))
    return (a > m) - (a < m)


@_JIT
def shared_exponent(M, E, rule, mprec, emax_elem, maxsig):
    """The power-of-two block scale exponent for ``amax = M * 2^E > 0`` under ``rule``.

    ``mprec`` is the element's mantissa bits (significant bits - 1) in its top binade, and
    ``maxsig`` the significand integer of the element maximum (``max = maxsig * 2^k`` with
    ``maxsig`` odd or of ``mprec + 1`` bits); ``emax_elem`` the exponent of its top binade.
    A rule code that is not a ``ScaleRule`` gives :data:`NO_RULE`.
    """
    bl = bit_length(M)
    e = E + bl - 1 - emax_elem  # FLOOR: floor(log2 amax) - emax
    if rule == FLOOR:
        return e
    if rule == CEIL or rule == EVEN:  # noqa: SIM109  (kept simple for numba)
        p = mprec + 1
        if bl > p:
            shift = bl - p
            kept = M >> shift
            rem = M & ((1 << shift) - 1)
            if rule == CEIL:
                up = rem != 0
            else:
                half = 1 << (shift - 1)
                up = rem > half or (rem == half and (kept & 1) == 1)
            if up and kept + 1 == (1 << p):
                e += 1
        return e
    if rule == RCEIL:  # amax and max * 2^e share a binade: compare their significands
        return e + (_sig_cmp(M, bl, maxsig, 1, 1) > 0)
    if rule == CEIL_POW2:  # up a binade unless M is a power of two
        return e + ((M & (M - 1)) != 0)
    if rule == RFLOOR:  # amax / max = (sig(amax) / sig(max)) 2^e, the ratio in (1/2, 2)
        return e - (_sig_cmp(M, bl, maxsig, 1, 1) < 0)
    if rule == RHALF_UP:  # the ratio against 3/4 and 3/2: e - 1, e or e + 1
        return e - 1 + (_sig_cmp(M, bl, maxsig, 4, 3) >= 0) + (_sig_cmp(M, bl, maxsig, 2, 3) >= 0)
    return NO_RULE


@_JIT
def mx_float_general(sign, M, E, e, ep, rnd, u, r):
    """General path of one MX float element ``(-1)^sign M 2^E`` under the scale ``2^e``.

    Returns ``(value as float64, element code)``. Kept out of line (not inlined by numba) so
    that the fast loop of :func:`mx_element` stays small.
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    if M == 0:
        st = FINITE
        s = sign if has_negative_zero(sg, hz, sp) else 0
        kept = 0
        q = 0
    else:
        st, s, kept, q = round_magnitude(
            sign, M, E - e, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r
        )
    v = math.ldexp(float(kept), q + e)
    return (-v if s == 1 else v), format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)


# ---- small steps -------------------------------------------------------------------------------


@_HOT
def pow2_f32(k):
    """float32 ``2**k`` for ``-149 <= k <= 127`` (subnormal below ``2**-126``)."""
    return bits_f32(((k + 127) << 23) if k >= -126 else (np.int64(1) << (k + 149)))


@_HOT
def pow2_f64(k):
    """float64 ``2**k`` (``math.ldexp(1.0, k)``, on the bits where ``2**k`` is normal)."""
    if -1022 <= k <= 1023:
        return bits_f64(np.int64(k + 1023) << 52)
    return math.ldexp(1.0, k)


@_HOT
def value_bits(v, f64):
    """Bits of the float64 value ``v`` stored into float32 (``f64 == 0``, one rounding) or
    float64 (``f64 == 1``)."""
    if f64 == 1:
        return f64_bits(v)
    return np.int64(f32_bits(np.float32(v)))


# ---- MX: power-of-two block scale --------------------------------------------------------------


@_JIT
def mx_scale(amaxb, sp):
    """``(special, e, scale code)`` of an MX block whose largest magnitude has the bits
    ``amaxb`` (layout ``sp.in_e``, ``sp.in_m``; ``sp`` an :class:`MxScalePlan`): ``special`` is
    1 for a block holding inf/NaN or whose scale exceeds the scale format (the block is NaN)."""
    in_e, in_m, rule, mprec, emax_elem, maxsig, s_emin, s_emax, s_bias, s_nan = sp
    infb = ((np.int64(1) << in_e) - 1) << in_m
    if amaxb >= infb:
        return 1, 0, s_nan
    _s, aM, aE, _spc = split_bits(amaxb, in_e, in_m)
    if aM == 0:
        return 0, s_emin, s_emin + s_bias
    e = shared_exponent(aM, aE, rule, mprec, emax_elem, maxsig)
    if e < s_emin:
        e = s_emin
    if e > s_emax:
        return 1, 0, s_nan
    return 0, e, e + s_bias


@_HOT
def mx_subnormal_quantum(e, ep):
    """``2**(emin - m + e)``: the element format's subnormal quantum under the scale ``2**e``
    (``ep`` its ``FormatParams``; 0 for integer elements' zeros)."""
    return pow2_f64(ep[1] - ep[0] + e)


@_HOT
def mx_rne32(b, inv, mul, plan):
    """float32 nearest-even MX element of float32 bits ``b`` under the scale ``mul = 2**e``
    (``inv = 2**-e``): ``rne(x * inv) * mul``, both products in float32 (exact where the result
    is non-zero), the rounding by the select-only :func:`~qemu_arrays.formats.rne32.rne32`
    (``plan`` under saturation). Float32 input and output, float elements, values only."""
    rb = rne32(f32_bits(bits_f32(b) * np.float32(inv)), plan)
    return bits_f32(rb) * np.float32(mul)


@_HOT
def mx_rne32_bits(b, e, plan):
    """:func:`mx_rne32` under the scale ``2**e``, as float32 bits."""
    return np.int64(f32_bits(mx_rne32(b, pow2_f32(-e), pow2_f32(e), plan)))


@_HOT
def _mx_fast(b, e, subq, in_e, in_m, ep, rnd, u, r, want):
    """The fast path of :func:`mx_element`: ``(done, value bits, code)``. Dividing by ``2^e`` is
    subtracting ``e`` from the exponent field, so an element whose shifted bits are still a
    normal IEEE value is rounded by :func:`~qemu_arrays.formats.cores.round_bits_fast` on those
    bits and scaled back by adding ``e`` to the exponent field when that stays normal; an
    element subnormal by :func:`~qemu_arrays.formats.cores.round_subnormal_fast`. ``done == 0``:
    the general path decides (same bits, by the contract of those functions)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    emask = (np.int64(1) << in_e) - 1
    ef = (b >> in_m) & emask
    if ef == 0 or not (1 <= ef - e < emask):
        return 0, np.int64(0), np.int64(0)
    eshift = np.int64(e) << in_m
    code = np.int64(0)
    ok, mag = round_bits_fast(b - eshift, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
    if ok:
        if want & 2:
            in_bias = (np.int64(1) << (in_e - 1)) - 1
            cef = (mag >> in_m) - in_bias + bias
            cmf = (mag & ((np.int64(1) << in_m) - 1)) >> (in_m - m)
            code = (((b >> (in_e + in_m)) & sg) << (eb + m)) | (cef << m) | cmf
        if want & 1 == 0:
            return 1, np.int64(0), code
        oef = (mag >> in_m) + e
        if 1 <= oef < emask:  # always, for float32 -> float32: defensive
            return 1, (b & (np.int64(1) << (in_e + in_m))) | (mag + eshift), code
        return 0, np.int64(0), np.int64(0)
    ok, s, kept = round_subnormal_fast(b - eshift, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r)
    if not ok:
        return 0, np.int64(0), np.int64(0)
    # an element subnormal: kept * 2^(emin - m), times 2^e
    if want & 2:
        code = format_code(FINITE, s, kept, emin - m, m, emin, eb, bias, sg, sp)
    v = np.float64(kept) * subq
    return 1, value_bits(-v if s == 1 else v, 1 if in_m == 52 else 0), code


@_HOT
def mx_int_element(sign, M, E, e, ie, rnd, u, r, want):
    """``(value as float64, code)`` of the integer element ``(-1)^sign M 2^E`` under the scale
    ``2**e`` (``ie`` an :class:`IntElement`): ``k = round(x / 2**e * 2**fb)`` into
    ``[qmin, qmax]``, the value ``k * 2**(e - fb)`` (0.0 unless ``want & 1``)."""
    _is_int, fb, qmin, qmax, cmask = ie
    if M == 0:
        k = 0
    else:
        a = math.ldexp(float(M), E - e + fb)
        if a == 0.0:
            a = 5e-324  # keeps "non-zero and tiny": every mode rounds it right
        _st, k = round_int_value(-a if sign == 1 else a, qmin, qmax, rnd, u, r)
    v = math.ldexp(float(k), e - fb) if want & 1 else 0.0
    return v, k & cmask


@_HOT
def mx_element(b, e, subq, sp, ep, ie, rnd, u, r, fast, want):
    """``(value bits, element code)`` of one MX element with bits ``b`` (layout ``sp.in_e``,
    ``sp.in_m``; value bits in that layout) under the block scale ``2**e`` (``subq`` the
    element's subnormal quantum times the scale, :func:`mx_subnormal_quantum`, computed once a
    block): the element step of every MX kernel, CPU and CUDA. ``ep`` the element's ``FormatParams`` (float elements),
    ``ie`` an :class:`IntElement`; ``fast == 1`` (float elements of at most the input's
    precision) tries the fast path on the bits :func:`_mx_fast` first; inlined into the
    caller's loop, with the general path of float elements (:func:`mx_float_general`) out of
    line.

    ``want`` bit 1: the value is needed, bit 2: the code (0 is returned for what is not, on the
    fast path)."""
    if fast == 1:
        done, vb, code = _mx_fast(b, e, subq, sp[0], sp[1], ep, rnd, u, r, want)
        if done == 1:
            return vb, code
    sign, M, E, _spc = split_bits(b, sp[0], sp[1])
    if ie[0] == 1:
        v, c = mx_int_element(sign, M, E, e, ie, rnd, u, r, want)
    else:
        v, c = mx_float_general(sign, M, E, e, ep, rnd, u, r)
    return value_bits(v, 1 if sp[1] == 52 else 0), c


# ---- NVFP4: float block scale times a float32 tensor scale -------------------------------------


@_HOT
def nv_scale_nan(sp_):
    """The scale format's NaN code (blocks holding inf/NaN)."""
    sm, semin, _semax, _ssigmax, _ssub, _shz, ssg, ssp, seb, sbias = sp_
    return format_code(NAN, 0, 0, 0, sm, semin, seb, sbias, ssg, ssp)


@_JIT
def nv_scale(amaxb, emaxv, t64, sp_):
    """``(special, scale code, d)`` of an NVFP4 block whose largest magnitude has the float32
    bits ``amaxb``: ``s_b = round(amax / (emaxv * t))`` into the scale format (nearest-even,
    saturating, one rounding of the float64 quotient), ``d = float32(s_b * t)``; ``special`` is
    1 (the NaN code, ``d = 0``) for a block holding inf/NaN."""
    if amaxb >= 0x7F800000:
        return 1, nv_scale_nan(sp_), np.float32(0.0)
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp_
    amax = np.float64(bits_f32(amaxb))
    v = amax / (emaxv * np.float64(t64))
    if v == 0.0:
        sst, ss, skept, sq = FINITE, 0, 0, 0
    else:
        fr, ex = math.frexp(v)
        sst, ss, skept, sq = round_magnitude(
            0, np.int64(math.ldexp(fr, 53)), ex - 53,
            sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, 0, SATURATE, 0, 0,
        )  # fmt: skip
    code = format_code(sst, ss, skept, sq, sm, semin, seb, sbias, ssg, ssp)
    return 0, code, np.float32(math.ldexp(float(skept), sq) * np.float64(t64))


@_HOT
def nv_vec_ok(amaxb, d):
    """Whether an NVFP4 block takes the select-only nearest-even step :func:`nv_rne32`: ``d``
    normal and no quotient ``x / d`` overflowing float32 (extreme tensor scales keep the
    general step)."""
    d = np.float32(d)
    return d >= 1.1754944e-38 and bits_f32(amaxb) / d < np.float32(1.0e38)


@_HOT
def nv_rne32(b, d, plan):
    """float32 nearest-even NVFP4 element of float32 bits ``b`` with the block's float32 ``d``:
    ``rne(float32(x / d)) * d`` by the select-only :func:`~qemu_arrays.formats.rne32.rne32`
    (``plan`` under saturation), where :func:`nv_vec_ok`."""
    d = np.float32(d)
    pb = rne32(f32_bits(bits_f32(b) / d), plan)
    return bits_f32(pb) * d


@_HOT
def nv_rne32_bits(b, d, plan):
    """:func:`nv_rne32` as float32 bits."""
    return np.int64(f32_bits(nv_rne32(b, d, plan)))


@_HOT
def sel_element32(b, inv, mul, nv, mode, plan, rplan, w, r):
    """float32 bits of the element, before its scale, of float32 bits ``b`` in every mode of
    the CPU's select-only block kernels: the quotient ``x * inv`` (MX, ``inv = 2**-e``; ``nv``
    0) or ``float32(x / mul)`` (NVFP4, ``mul = d``; ``nv`` 1), rounded by
    :func:`~qemu_arrays.formats.rne32.rne32` (``mode`` nearest-even, ``plan``) or
    :func:`~qemu_arrays.formats.round32.round32` (``rplan``; ``w`` the random word of
    stochastic rounding). The same rule as :func:`mx_rne32` / :func:`nv_rne32` and, where their
    callers allow it, :func:`mx_element` / :func:`nv_element`."""
    if nv == 0:
        q = f32_bits(bits_f32(b) * inv)
    else:
        q = f32_bits(bits_f32(b) / mul)
    if mode == RNE:
        return rne32(q, plan)
    return round32(q, rplan, mode, w, r)


@_HOT
def sel_value32(p, mul):
    """The float32 value of the element with float32 bits ``p`` under the block scale ``mul``
    (``2**e`` for MX, ``d`` for NVFP4): one product, exact where it is not zero."""
    return bits_f32(p) * mul


@_HOT
def _nv_fast(qb, sign, d, ep, rnd, u, r, want, f64):
    """The fast path of :func:`nv_element` on the float32 quotient's bits ``qb``: ``(done,
    value bits, code)``. A normal quotient is rounded on its own bits and the value ``p * d`` is
    one product (in float32, or float64 for ``f64 == 1``); an element subnormal likewise."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    code = np.int64(0)
    ok, mag = round_bits_fast(qb, 8, 23, m, emin, emax, sigmax, sg, rnd, u, r)
    if ok:
        if want & 2:
            cef = (mag >> 23) - 127 + bias
            cmf = (mag & 0x7FFFFF) >> (23 - m)
            code = ((sign & sg) << (eb + m)) | (cef << m) | cmf
        pv = bits_f32((qb & 0x80000000) | mag)
        if f64 == 1:
            return 1, f64_bits(np.float64(pv) * np.float64(d)), code
        return 1, np.int64(f32_bits(pv * d)), code
    ok, s, kept = round_subnormal_fast(qb, 8, 23, m, emin, sub, hz, sg, sp, rnd, u, r)
    if not ok:
        return 0, np.int64(0), code
    # an element subnormal: kept * 2^(emin - m)
    if want & 2:
        code = format_code(FINITE, s, kept, emin - m, m, emin, eb, bias, sg, sp)
    pv = np.float32(np.float64(kept) * pow2_f64(emin - m))  # exact
    if f64 == 1:
        val = np.float64(pv) * np.float64(d)
        return 1, f64_bits(-val if s == 1 else val), code
    val32 = pv * d
    return 1, np.int64(f32_bits(-val32 if s == 1 else val32)), code


@_JIT
def nv_element_general(b, d, ep, rnd, u, r, want, f64):
    """The general path of :func:`nv_element`: ``(value bits, code)``. Kept out of line, so
    that the loops inlining :func:`nv_element` stay small."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    d = np.float32(d)
    sign = (b >> 31) & 1
    if d == 0.0:  # the block scale rounded to zero: every element is a zero of its sign
        st, s, kept, q = FINITE, (sign if has_negative_zero(sg, hz, sp) else 0), 0, 0
    else:
        qv = np.float64(bits_f32(b) / d)
        if qv == 0.0:
            st = FINITE
            s = sign if has_negative_zero(sg, hz, sp) else 0
            kept = 0
            q = 0
        else:
            # a quotient that overflowed float32 (a tiny given tensor scale) saturates, as any
            # magnitude beyond the element maximum does: clamped to a finite float64 first
            # (int64(ldexp(inf, 53)) is undefined: INT64_MIN on a CPU, INT64_MAX on a GPU)
            fr, ex = math.frexp(min(abs(qv), 1.0e300))
            st, s, kept, q = round_magnitude(
                sign, np.int64(math.ldexp(fr, 53)), ex - 53,
                m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r,
            )  # fmt: skip
    val = math.ldexp(float(kept), q) * np.float64(d)
    code = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp) if want & 2 else 0
    return value_bits(-val if s == 1 else val, f64), code


@_HOT
def nv_element(b, d, ep, rnd, u, r, fast, want, f64):
    """``(value bits, element code)`` of one NVFP4 element with float32 bits ``b`` and the
    block's float32 ``d``: the element step of every NVFP4 kernel, CPU and CUDA. The element is
    ``round(float32(x / d))`` (the float32 quotient correctly rounded, then rounded into the
    element format, saturating), its value that times ``d`` rounded once. ``f64 == 1``: the
    value is computed and returned as float64 bits, else as float32 bits. ``fast == 1`` (an
    element format of at most 23 fraction bits) tries the fast path on the quotient's bits
    :func:`_nv_fast` first, inlined into the caller's loop, then :func:`nv_element_general`."""
    d = np.float32(d)
    if fast == 1 and d != 0.0:
        qb = np.int64(f32_bits(bits_f32(b) / d))
        done, vb, code = _nv_fast(qb, (b >> 31) & 1, d, ep, rnd, u, r, want, f64)
        if done == 1:
            return vb, code
    return nv_element_general(b, d, ep, rnd, u, r, want, f64)


# ---- decode ------------------------------------------------------------------------------------


@_JIT
def block_value(c, sc, ep, ie, ebits, sp_, is_nv, t64):
    """float64 value of element code ``c`` with scale code ``sc``: the element's value (``ep``
    its ``FormatParams``, or ``ie`` an :class:`IntElement`; ``ebits`` its code width) times the
    block scale, for NVFP4 times ``d = float32(s_b * t)``."""
    if ie[0] == 1:
        k = np.int64(c) & ((np.int64(1) << ebits) - 1)
        if k >> (ebits - 1):
            k -= np.int64(1) << ebits
        ev = math.ldexp(float(k), -ie[1])
    else:
        m, emin, _emax, _sig, sub, hz, sg, sp, eb, bias = ep
        ev = decode_code(np.int64(c) & ((np.int64(1) << ebits) - 1),
                         m, emin, eb, bias, sub, hz, sg, sp)  # fmt: skip
    sm, semin, _semax, _ssig, ssub, shz, ssg, ssp, seb, sbias = sp_
    sv = decode_code(np.int64(sc) & 0xFF, sm, semin, seb, sbias, ssub, shz, ssg, ssp)
    if is_nv == 1:
        return ev * np.float64(np.float32(sv * np.float64(t64)))
    return ev * sv
