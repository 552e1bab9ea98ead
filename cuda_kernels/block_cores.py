"""Scalar steps of the block-format (MX, NVFP4) CUDA kernels, as ``@numba.njit`` functions.

Each function is one step of :func:`qemu_arrays.cpu_blocks.mx_kernel` or
:func:`~qemu_arrays.cpu_blocks.nv_kernel` for one block or one element, written over the same
scalar cores (:mod:`qemu_arrays.formats.cores`, and ``split_bits``, ``shared_exponent``,
``mx_float_general`` of :mod:`qemu_arrays.formats.block_cores`), with the same arithmetic in the same
order, so that the GPU computes the CPU's bits. numba compiles them for CUDA when a kernel of
:mod:`qemu_arrays.cuda_kernels.block_kernels` calls them, and for the CPU when the kernels run in the CUDA
simulator (and in the tests, which call them directly). This module imports no ``numba.cuda``.

Float32 arguments are cast to float32 again on entry: in the simulator a kernel body is Python,
and a float32 that an ``@njit`` function returns comes back to it as a Python float (float64).

Input bits arrive in a *load kind* and values leave in an *output kind*:

====  ==========================================  ==========================================
kind  load (:func:`load_bits`)                    store (:func:`store_bits`)
====  ==========================================  ==========================================
0     float32 bits                                float32 bits
1     float64 bits (kept as float64)              float64 bits (computed in float64)
2     float16 bits, widened exactly to float32    float32 bits rounded (nearest-even) to float16
3     bfloat16 bits, widened exactly to float32   float32 bits rounded (nearest-even) to bfloat16
4     float64 bits, rounded to float32            float32 bits widened exactly to float64
====  ==========================================  ==========================================
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qemu_arrays.formats.bits import bits_f32, bits_f64, f32_bits, f64_bits
from qemu_arrays.formats.block_cores import mx_float_general, shared_exponent, split_bits
from qemu_arrays.formats.cores import (
    FINITE,
    NAN,
    OWN,
    RNE,
    SATURATE,
    bit_length,
    decode_code,
    format_code,
    has_negative_zero,
    ieee_bits,
    round_bits_fast,
    round_ieee_bits,
    round_int_value,
    round_magnitude,
    round_subnormal_fast,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.rne32 import rne32

purge_stale_cache(__file__)  # formats/ sources, rne32 included, are always covered

_JIT = {"cache": True, "nogil": True}
_HOT = {"cache": True, "nogil": True, "inline": "always"}

# float16 / bfloat16 parameters of qemu_arrays.formats.cores (m, emin, emax, sigmax) for the narrowing
F16 = (10, -14, 15, 2047)
BF16 = (7, -126, 127, 255)


# ---- loads and stores ------------------------------------------------------------------------


@njit(**_HOT)
def f16_to_f32_bits(h):
    """float32 bits of the float16 with bits ``h`` (exact)."""
    h = h & 0xFFFF
    s = (h >> 15) << 31
    ef = (h >> 10) & 0x1F
    mf = h & 0x3FF
    if ef == 0x1F:
        return s | 0x7F800000 | (mf << 13)
    if ef == 0:
        if mf == 0:
            return s
        bl = bit_length(mf)  # value mf * 2**-24 = 1.f * 2**(bl - 25)
        return s | ((bl + 102) << 23) | ((mf << (24 - bl)) & 0x7FFFFF)
    return s | ((ef + 112) << 23) | (mf << 13)


@njit(**_HOT)
def load_bits(raw, kind):
    """The bits a kernel computes on (float32 layout, or float64 for kind 1) of a raw load."""
    b = np.int64(raw)
    if kind == 0:
        return b & 0xFFFFFFFF
    if kind == 1:
        return b
    if kind == 2:
        return f16_to_f32_bits(b)
    if kind == 3:
        return (b & 0xFFFF) << 16
    return np.int64(f32_bits(np.float32(bits_f64(b))))  # float64 -> float32, nearest-even


@njit(**_JIT)
def narrow_bits(b32, kind):
    """float32 bits rounded (nearest-even, overflow to inf) to float16 (2) or bfloat16 (3),
    as the cast of the CPU route's float32 result; canonical NaN."""
    if kind == 2:
        m, emin, emax, sig = F16
        oe, om = 5, 10
    else:
        m, emin, emax, sig = BF16
        oe, om = 8, 7
    st, s, kept, q = round_ieee_bits(b32, 8, 23, m, emin, emax, sig, 1, 1, 1, 0, RNE, OWN, 0, 32)
    return ieee_bits(st, s, kept, q, oe, om)


@njit(**_HOT)
def store_bits(vb, kind):
    """What a kernel writes (bits of the output dtype) for value bits ``vb`` (float32 layout,
    or float64 for kind 1)."""
    if kind == 0 or kind == 1:
        return vb
    if kind == 4:
        return f64_bits(np.float64(bits_f32(vb)))
    return narrow_bits(vb, kind)


@njit(**_HOT)
def value_bits(v, f64):
    """Bits of the float64 value ``v`` stored into float32 (``f64 == 0``, one rounding) or
    float64 (``f64 == 1``)."""
    if f64 == 1:
        return f64_bits(v)
    return np.int64(f32_bits(np.float32(v)))


@njit(**_HOT)
def abs_bits(b, kind):
    """Magnitude bits (ordered as the magnitudes are) of computed bits ``b``."""
    if kind == 1:
        return b & 0x7FFFFFFFFFFFFFFF
    return b & 0x7FFFFFFF


# ---- MX: power-of-two block scale --------------------------------------------------------------


@njit(**_JIT)
def mx_scale(amaxb, in_e, in_m, rule, mprec, emax_elem, maxsig, s_emin, s_emax, s_bias, s_nan):
    """``(special, e, scale code)`` of a block whose largest magnitude has bits ``amaxb``:
    ``special`` is 1 for a block holding inf/NaN or whose scale exceeds the scale format."""
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


@njit(**_HOT)
def pow2_f32(k):
    """float32 ``2**k`` for ``-149 <= k <= 127`` (subnormal below ``2**-126``)."""
    return bits_f32(((k + 127) << 23) if k >= -126 else (np.int64(1) << (k + 149)))


@njit(**_HOT)
def mx_rne32(b, e, plan):
    """Nearest-even MX element of float32 bits ``b`` under the scale ``2**e``: the select-only
    loop of ``mx_kernel`` (``x * 2**-e`` rounded, times ``2**e``, both products in float32)."""
    rb = rne32(f32_bits(bits_f32(b) * pow2_f32(-e)), plan)
    return np.int64(f32_bits(bits_f32(rb) * pow2_f32(e)))


@njit(**_JIT)
def mx_element(b, e, in_e, in_m, ep, is_int, fb, qmin, qmax, cmask, rnd, u, r, fast, want):
    """``(value bits, element code)`` of one MX element with bits ``b`` (layout ``in_e``,
    ``in_m``) under the block scale ``2**e``: the element loop of ``mx_kernel``.

    ``want`` bit 1: the value is needed, bit 2: the code (0 is returned for what is not)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    f64 = 1 if in_m == 52 else 0
    code = 0
    if fast == 1:
        emask = (np.int64(1) << in_e) - 1
        ef = (b >> in_m) & emask
        if ef != 0 and 1 <= ef - e < emask:
            eshift = np.int64(e) << in_m
            ok, mag = round_bits_fast(b - eshift, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
            if ok:
                if want & 2:
                    in_bias = (np.int64(1) << (in_e - 1)) - 1
                    cef = (mag >> in_m) - in_bias + bias
                    cmf = (mag & ((np.int64(1) << in_m) - 1)) >> (in_m - m)
                    code = (((b >> (in_e + in_m)) & sg) << (eb + m)) | (cef << m) | cmf
                if want & 1 == 0:
                    return 0, code
                oef = (mag >> in_m) + e
                if 1 <= oef < emask:  # always, for float32 -> float32: defensive
                    return (b & (np.int64(1) << (in_e + in_m))) | (mag + eshift), code
            else:
                ok, s, kept = round_subnormal_fast(
                    b - eshift, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r
                )
                if ok:  # an element subnormal: kept * 2^(emin - m), times 2^e
                    if want & 2:
                        code = format_code(FINITE, s, kept, emin - m, m, emin, eb, bias, sg, sp)
                    v = np.float64(kept) * math.ldexp(1.0, emin - m + e)
                    return value_bits(-v if s == 1 else v, f64), code
    sign, M, E, _spc = split_bits(b, in_e, in_m)
    if is_int == 1:
        if M == 0:
            k = 0
        else:
            a = math.ldexp(float(M), E - e + fb)
            if a == 0.0:
                a = 5e-324  # keeps "non-zero and tiny": every mode rounds it right
            _st, k = round_int_value(-a if sign == 1 else a, qmin, qmax, rnd, u, r)
        return value_bits(math.ldexp(float(k), e - fb), f64), k & cmask
    v, c = mx_float_general(sign, M, E, e, ep, rnd, u, r)
    return value_bits(v, f64), c


# ---- NVFP4: float block scale times a float32 tensor scale -------------------------------------


@njit(**_JIT)
def nv_scale(amaxb, emaxv, t64, sp_):
    """``(scale code, d)`` of a finite block whose largest magnitude has float32 bits
    ``amaxb``: ``s_b = round(amax / (emaxv * t))`` into the scale format (nearest-even,
    saturating), ``d = float32(s_b * t)``."""
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp_
    amax = np.float64(bits_f32(amaxb))
    v = amax / (emaxv * t64)
    if v == 0.0:
        sst, ss, skept, sq = FINITE, 0, 0, 0
    else:
        fr, ex = math.frexp(v)
        sst, ss, skept, sq = round_magnitude(
            0, np.int64(math.ldexp(fr, 53)), ex - 53,
            sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, 0, SATURATE, 0, 0,
        )  # fmt: skip
    code = format_code(sst, ss, skept, sq, sm, semin, seb, sbias, ssg, ssp)
    return code, np.float32(math.ldexp(float(skept), sq) * t64)


@njit(**_HOT)
def nv_scale_nan(sp_):
    """The scale format's NaN code (blocks holding inf/NaN)."""
    sm, semin, _semax, _ssigmax, _ssub, _shz, ssg, ssp, seb, sbias = sp_
    return format_code(NAN, 0, 0, 0, sm, semin, seb, sbias, ssg, ssp)


@njit(**_HOT)
def nv_vec_ok(amaxb, d):
    """Whether the block takes the select-only nearest-even loop (as ``nv_kernel``)."""
    d = np.float32(d)  # (a float32 passed through Python in the simulator arrives as float64)
    return d >= 1.1754944e-38 and bits_f32(amaxb) / d < np.float32(1.0e38)


@njit(**_HOT)
def nv_rne32(b, d, plan):
    """Nearest-even NVFP4 element of float32 bits ``b`` with the block's float32 ``d``."""
    d = np.float32(d)
    pb = rne32(f32_bits(bits_f32(b) / d), plan)
    return np.int64(f32_bits(bits_f32(pb) * d))


@njit(**_JIT)
def nv_element(b, d, ep, rnd, u, r, fast, want, f64):
    """``(value bits, element code)`` of one NVFP4 element with float32 bits ``b`` and the
    block's float32 ``d``: the element loop of ``nv_kernel``. ``f64 == 1``: the value is
    computed and returned as float64 bits (float64 input), else as float32 bits."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    d = np.float32(d)  # (a float32 passed through Python in the simulator arrives as float64)
    sign = (b >> 31) & 1
    code = 0
    if d == 0.0:
        st, s, kept, q = FINITE, 0, 0, 0
    else:
        qf = bits_f32(b) / d
        if fast == 1:
            qb = np.int64(f32_bits(qf))
            ok, mag = round_bits_fast(qb, 8, 23, m, emin, emax, sigmax, sg, rnd, u, r)
            if ok:
                if want & 2:
                    cef = (mag >> 23) - 127 + bias
                    cmf = (mag & 0x7FFFFF) >> (23 - m)
                    code = ((sign & sg) << (eb + m)) | (cef << m) | cmf
                pv = bits_f32((qb & 0x80000000) | mag)
                if f64 == 1:
                    return f64_bits(np.float64(pv) * np.float64(d)), code
                return np.int64(f32_bits(pv * d)), code
            ok, s, kept = round_subnormal_fast(qb, 8, 23, m, emin, sub, hz, sg, sp, rnd, u, r)
            if ok:  # an element subnormal: kept * 2^(emin - m)
                if want & 2:
                    code = format_code(FINITE, s, kept, emin - m, m, emin, eb, bias, sg, sp)
                pv = np.float32(np.float64(kept) * math.ldexp(1.0, emin - m))  # exact
                if f64 == 1:
                    val = np.float64(pv) * np.float64(d)
                    return f64_bits(-val if s == 1 else val), code
                val32 = pv * d
                return np.int64(f32_bits(-val32 if s == 1 else val32)), code
        qv = np.float64(qf)
        if qv == 0.0:
            st = FINITE
            s = sign if has_negative_zero(sg, hz, sp) else 0
            kept = 0
            q = 0
        elif abs(qv) == math.inf:
            # x / d overflowed float32 (only with an extreme scale=): E2M1(inf) saturates, in
            # every mode. Written out because int64(ldexp(inf, 53)) below is undefined (the
            # CPU gets INT64_MIN there, a GPU INT64_MAX)
            st, s, kept, q = round_magnitude(
                sign, 1, 1023, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r
            )
        else:
            fr, ex = math.frexp(abs(qv))
            st, s, kept, q = round_magnitude(
                sign, np.int64(math.ldexp(fr, 53)), ex - 53,
                m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r,
            )  # fmt: skip
    val = math.ldexp(float(kept), q) * np.float64(d)
    if want & 2:
        code = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)
    return value_bits(-val if s == 1 else val, f64), code


# ---- decode ----------------------------------------------------------------------------------


@njit(**_JIT)
def block_value(c, sc, ep, is_int, ebits, fb, sp_, is_nv, t64):
    """float64 value of element code ``c`` with scale code ``sc`` (``block_values``)."""
    if is_int == 1:
        k = np.int64(c) & ((np.int64(1) << ebits) - 1)
        if k >> (ebits - 1):
            k -= np.int64(1) << ebits
        ev = math.ldexp(float(k), -fb)
    else:
        m, emin, _emax, _sig, sub, hz, sg, sp, eb, bias = ep
        ev = decode_code(np.int64(c) & ((np.int64(1) << ebits) - 1),
                         m, emin, eb, bias, sub, hz, sg, sp)  # fmt: skip
    sm, semin, _semax, _ssig, ssub, shz, ssg, ssp, seb, sbias = sp_
    sv = decode_code(np.int64(sc) & 0xFF, sm, semin, seb, sbias, ssub, shz, ssg, ssp)
    if is_nv == 1:
        return ev * np.float64(np.float32(sv * t64))
    return ev * sv


@njit(**_JIT)
def decoded_bits(v, kind):
    """Bits of the float64 ``v`` in the output dtype, as the CPU route's ``cast_float`` gives
    them: float32 (0) and float64 (1) directly, float16 (2) and bfloat16 (3) rounded once
    (nearest-even, overflow to inf) from float64."""
    if kind == 1:
        return f64_bits(v)
    if kind == 0:
        return np.int64(f32_bits(np.float32(v)))
    if kind == 2:
        m, emin, emax, sig = F16
        oe, om = 5, 10
    else:
        m, emin, emax, sig = BF16
        oe, om = 8, 7
    st, s, kept, q = round_ieee_bits(
        f64_bits(v), 11, 52, m, emin, emax, sig, 1, 1, 1, 0, RNE, OWN, 0, 53
    )
    return ieee_bits(st, s, kept, q, oe, om)
