"""numba CPU kernels for element formats: loops over the scalar cores of :mod:`qemu_arrays.formats.cores`.

One compiled kernel per input bit width (float32 bits, float64 bits); formats, rounding modes and
policies are run-time integer parameters, so adding a format never compiles anything new.
Compilation is lazy (first call) and cached on disk (``cache=True``).

Each kernel is a serial span over elements ``lo:hi`` (an ``@njit`` function), which the public
function of the same name (plain Python) runs through :func:`qemu_arrays.kernels.runtime.run`: on the
calling thread for a small array, in chunks of ``CHUNK`` elements on numba's thread pool
(:mod:`qemu_arrays.kernels.parallel`) for a large one. The span is compiled once for both.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qemu_arrays.formats.bits import bits_f32, bits_f64, f32_bits, f64_bits
from qemu_arrays.formats.cores import (
    FNUZ,
    IEEE,
    NAN_ERROR,
    P3109,
    RDN,
    RNE,
    RTZ,
    RUP,
    SR,
    decode_code,
    format_code,
    ieee_bits,
    random_u,
    round_bits_fast,
    round_ieee_bits,
    round_int_value,
    round_subnormal_fast,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.rne32 import rne32
from qemu_arrays.formats.round32 import (
    code32,
    round32,
    round64,
    sr_word32_run,
    sr_word64_run,
    value32,
)
from qemu_arrays.kernels import half as _half
from qemu_arrays.kernels.half import bf16_to_f32, f32_to_bf16, f32_to_half, half_to_f32
from qemu_arrays.kernels.runtime import init_threading, run

_JIT = {"cache": True, "nogil": True}

purge_stale_cache(__file__, _half.__file__)  # its kernels inline half.py's intrinsics
init_threading()

CHUNK = 4096  # elements per parallel task; the inner loop is a plain range the compiler keeps tight


def _make_quantize_span(mode):
    """The span of :func:`quantize_float_bits` compiled for rounding code ``mode`` (its callers
    pass that mode as ``rnd``), or for any mode (``mode = -1``, read at run time).

    Nearest-even and stochastic rounding, the common modes, get their own compile: the mode is
    then a constant that LLVM folds into the inlined fast paths (nearest-even on float64 input
    ran 1.3-2.5x slower with the mode read at run time, on the 2-core development machine).
    Each compiles on first use only. The general core takes the run-time ``rnd`` (the same
    value), so that it compiles once for all three.
    """

    @njit(**_JIT)
    def _quantize_span(lo, hi, xb, outb, outf, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
        m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
        rk = mode if mode >= 0 else rnd  # a constant where specialised
        sign_mask = 1 << (in_e + in_m)
        sub_scale = math.ldexp(1.0, emin - m)
        err = 0
        for i in range(lo, hi):
            b = np.int64(xb[i])
            # int64 either way (a literal 0 would compile the general core a second time)
            u = np.int64(random_u(k0, k1, k2, offset + i, r)) if rk == SR else np.int64(0)
            ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rk, u, r)
            if ok:
                outb[i] = (b & sign_mask) | mag
                continue
            ok, s, kept = round_subnormal_fast(b, in_e, in_m, m, emin, sub, hz, sg, sp, rk, u, r)
            if ok:  # sign applied arithmetically: a branch on a random sign mispredicts
                outf[i] = np.float64(kept) * sub_scale * np.float64(1 - 2 * s)
                continue
            st, s, kept, q = round_ieee_bits(
                b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
            )
            if st == NAN_ERROR:
                err += 1
            outb[i] = ieee_bits(st, s, kept, q, in_e, in_m)
        return err

    return _quantize_span


_QUANTIZE_SPANS = {RNE: _make_quantize_span(RNE), SR: _make_quantize_span(SR)}
_quantize_span_any = _make_quantize_span(-1)


def quantize_float_bits(xb, outb, outf, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the values.

    ``outb`` and ``outf`` are the same output buffer viewed as bits and as floats. Each element
    takes the first path that applies: the in-range fast path on its own bits, the subnormal
    fast path, or the general core; all three give the general core's result. Returns the
    number of NaN errors.
    """
    span = _QUANTIZE_SPANS.get(rnd, _quantize_span_any)
    args = (xb, outb, outf, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r)
    return run(xb.size, "element", span, xb.size, CHUNK, *args)


@njit(**_JIT)
def _encode_span(lo, hi, xb, codes, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`encode_float_bits`; returns the NaN-error count."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    in_bias = (1 << (in_e - 1)) - 1
    in_mmask = (1 << in_m) - 1
    err = 0
    for i in range(lo, hi):
        b = np.int64(xb[i])
        u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
        ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
        if ok:
            ef = (mag >> in_m) - in_bias + bias
            mf = (mag & in_mmask) >> (in_m - m)
            codes[i] = (((b >> (in_e + in_m)) & sg) << (eb + m)) | (ef << m) | mf
            continue
        ok, s, kept = round_subnormal_fast(b, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r)
        if ok:
            codes[i] = ((s & sg) << (eb + m)) | kept
            continue
        st, s, kept, q = round_ieee_bits(
            b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
        )
        if st == NAN_ERROR:
            err += 1
        codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)
    return err


def encode_float_bits(xb, codes, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the format's codes."""
    args = (xb, codes, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r)
    return run(xb.size, "element", _encode_span, xb.size, CHUNK, *args)


@njit(**_JIT)
def _decode_span(lo, hi, codes, out, p):
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    for i in range(lo, hi):
        out[i] = decode_code(np.int64(codes[i]), m, emin, eb, bias, sub, hz, sg, sp)
    return 0


def decode_codes(codes, out, p):
    """Values (float64) of the format's codes (int64)."""
    run(codes.size, "decode", _decode_span, codes.size, CHUNK, codes, out, p)


@njit(**_JIT)
def _int_span(lo, hi, x, out, codes, scale, zero_point, qmin, qmax, rnd, k0, k1, k2, offset, r,
              want):  # fmt: skip
    err = 0
    ns = scale.size
    nz = zero_point.size
    for i in range(lo, hi):
        s = scale[i] if ns > 1 else scale[0]
        z = zero_point[i] if nz > 1 else zero_point[0]
        u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
        st, k = round_int_value(np.float64(x[i]) / s, qmin - z, qmax - z, rnd, u, r)
        if st == NAN_ERROR:
            err += 1
        if want == 1:
            out[i] = np.float64(k) * s
        else:
            codes[i] = k + z
    return err


def quantize_int(x, out, codes, scale, zero_point, qmin, qmax, rnd, k0, k1, k2, offset, r, want):
    """Integer (additive) quantization: ``k = clamp(round(x / s) + z)``.

    ``scale`` and ``zero_point`` hold one value or one per element. ``want`` 1 writes the
    dequantized value ``(k - z) * s`` to ``out``, 2 writes the code ``k`` (two's complement,
    masked to the storage width by the caller) to ``codes``. Returns the NaN-error count.
    """
    args = (x, out, codes, scale, zero_point, qmin, qmax, rnd, k0, k1, k2, offset, r, want)
    return run(x.size, "element", _int_span, x.size, CHUNK, *args)


# ---- branch-free nearest-even for float32 input -----------------------------------------------


def rne_f32_plan(p, overflow: int):
    """Constants of :func:`quantize_f32_rne` for format parameters ``p``, or None when the
    format needs the general kernel (unsigned, no zero, no subnormals, wider than float32)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    if not (sg == 1 and hz == 1 and sub == 1 and 0 <= m < 23 and emin >= -126 and emax <= 127):
        return None
    sh = 23 - m
    has_inf = sp in (0, 4)
    has_nan = m > 0 if sp == 0 else sp != 3
    neg_zero = sp not in (2, 4)
    max_mag = ((emax + 127) << 23) | ((sigmax - (1 << m)) << sh)
    if overflow != 1 and has_inf:
        ovf_mag, ovf_nan = 0x7F800000, 0
    elif overflow != 1 and has_nan:
        ovf_mag, ovf_nan = 0, 1
    else:
        ovf_mag, ovf_nan = max_mag, 0
    return (
        sh,
        (1 << (sh - 1)) - 1,
        (1 << sh) - 1,
        int(m == 0),
        emin + 127,
        max_mag,
        ovf_mag,
        ovf_nan,
        int(has_nan),
        int(neg_zero),
        math.ldexp(1.0, emin - m + 23),
    )


@njit(cache=True, nogil=True, inline="always")
def rne_f32_bits(b, plan):
    """Nearest-even rounding of the float32 with bits ``b`` into the format of ``plan``, as
    float32 bits, in selects only (see :func:`quantize_f32_rne`)."""
    sh, half_m1, low, m0, lo_field, max_mag, ovf_mag, ovf_nan, has_nan, neg_zero, c64 = plan
    sign = b & 0x80000000
    mag = b & 0x7FFFFFFF
    ef = mag >> 23
    odd = ((mag >> sh) & 1) | m0
    rn = (mag + half_m1 + odd) & ~low
    rs = np.int64(f32_bits((abs(bits_f32(mag)) + np.float32(c64)) - np.float32(c64)))
    r = rs if ef < lo_field else rn
    special = ef == 255
    is_nan = special & ((mag & 0x7FFFFF) != 0)
    over = (r > max_mag) | special  # inf input behaves as an overflow
    r = ovf_mag if over else r
    nan_out = is_nan | (over & (ovf_nan == 1))
    keep_sign = (r != 0) | (neg_zero == 1)
    res = (r | sign) if keep_sign else r
    return 0x7FC00000 if nan_out else res


@njit(**_JIT)
def _rne_span(lo, hi, xb, outb, plan):
    """Elements ``lo:hi`` of :func:`quantize_f32_rne`, in chunks of ``CHUNK``; returns the
    number of chunks holding a NaN input when the format has no NaN (the select-only loop does
    not decide those: the caller then takes the general kernel)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        nan_in = False
        for j in range(c1 - c0):  # unsigned indices: no negative-index wraparound code
            i = np.uint64(c0) + np.uint64(j)
            b = xb[i]
            outb[i] = rne32(b, plan)  # rne_f32_bits on 32-bit words: twice the vector lanes
            nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        todo += nan_in and has_nan == 0
    return todo


def quantize_f32_rne(xb, outb, plan, p, ovf):
    """Round-to-nearest-even of float32 input in selects only, so the element loop vectorizes.

    In range it rounds the magnitude bits in place; below the smallest normal it adds and
    subtracts ``C = 2**(emin - m + 23)`` in float32, whose own nearest-even rounding is then the
    format's (the grid spacing there is ``ulp(C)``); specials and overflow are selected by the
    policy. Identical to :func:`quantize_float_bits` with ``rnd = RNE`` (tested). NaN input
    into a format without NaN is the policy's to decide: then the whole array takes
    :func:`quantize_float_bits` (so that this kernel needs no general core, and compiles in a
    fraction of the time). Returns the NaN-error count.
    """
    if run(xb.size, "element_rne", _rne_span, xb.size, CHUNK, xb, outb, plan):
        rne = int(RNE)
        return quantize_float_bits(
            xb, outb, outb.view(np.float32), 8, 23, p, rne, ovf, 0, 0, 0, 0, 32
        )
    return 0


@njit(**_JIT)
def _rne16_span(lo, hi, xh, outh, plan, bf):
    """Elements ``lo:hi`` of :func:`quantize_16_rne`; returns the number of chunks holding a NaN
    input when the format has no NaN (as :func:`_rne_span`)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        nan_in = False
        if bf == 1:
            for j in range(c1 - c0):
                i = np.uint64(c0) + np.uint64(j)
                b = bf16_to_f32(xh[i])
                outh[i] = f32_to_bf16(rne32(b, plan))
                nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        else:
            for j in range(c1 - c0):
                i = np.uint64(c0) + np.uint64(j)
                b = half_to_f32(xh[i])
                outh[i] = f32_to_half(rne32(b, plan))
                nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        todo += nan_in and has_nan == 0
    return todo


def quantize_16_rne(xh, outh, plan, bf: int) -> bool:
    """Nearest-even rounding of float16 (``bf = 0``) or bfloat16 (``bf = 1``) input, given and
    written as uint16 bits, in one select-only pass: each element widened exactly to float32,
    rounded as :func:`quantize_f32_rne` does, and narrowed back to its own dtype (nearest even,
    overflow to inf: ``qemu_arrays.float_casts.cast_float``; the kernel's NaN is the canonical
    quiet one). Returns False, having written nothing the caller may keep, when an input is a
    NaN and the format has none (the caller then takes the float32 route)."""
    return not run(xh.size, "element_rne", _rne16_span, xh.size, CHUNK, xh, outh, plan, bf)


# ---- branch-free codes (encode) for float32 input, nearest-even ---------------------------------


def code_plan(p):
    """Constants of :func:`encode_f32_rne`'s step from a rounded float32 value to the format's
    code (:func:`qemu_arrays.formats.cores.format_code` on the value), for a format that
    :func:`rne_f32_plan` takes; None when ``2**(m - emin)`` exceeds float32's range (bfloat16,
    tf32) or an IEEE format without a NaN code (no mantissa bits): the general kernel)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    if m - emin > 127 or (sp == IEEE and m == 0):  # m == 0: an IEEE format with no NaN code
        return None
    mag_bits = eb + m
    all_mag = (1 << mag_bits) - 1
    inf_code = all_mag if sp == P3109 else ((1 << eb) - 1) << m
    if sp in (FNUZ, P3109):
        nan_pos = nan_neg = 1 << mag_bits
    elif sp == IEEE:
        nan_pos = (((1 << eb) - 1) << m) | (1 << (m - 1))
        nan_neg = nan_pos | (1 << mag_bits)
    else:
        nan_pos, nan_neg = all_mag, all_mag | (1 << mag_bits)
    sh = 23 - m
    return (sh, (127 - bias) << m, (emin + 127) << 23, math.ldexp(1.0, m - emin), inf_code,
            nan_pos, nan_neg, mag_bits)  # fmt: skip


@njit(**_JIT)
def _encode_rne_span(lo, hi, xb, codes, plan, cplan):
    """Elements ``lo:hi`` of :func:`encode_f32_rne` (as :func:`_rne_span`)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        nan_in = False
        for j in range(c1 - c0):
            i = np.uint64(c0) + np.uint64(j)
            b = xb[i]
            codes[i] = code32(b, rne32(b, plan), cplan)
            nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        todo += nan_in and has_nan == 0
    return todo


def encode_f32_rne(xb, codes, plan, p, ovf):
    """Nearest-even codes of float32 input in selects only: each value rounded as
    :func:`quantize_f32_rne` does, then mapped to its code (normal: the float32 exponent and
    mantissa fields re-biased; subnormal: ``value * 2**(m - emin)``; inf, NaN: the format's
    codes, a NaN's sign from the input). Identical to :func:`encode_float_bits` (tested); NaN
    input into a format without NaN takes that kernel. Returns the NaN-error count."""
    cplan = code_plan(p)
    if cplan is None or run(
        xb.size, "element_rne", _encode_rne_span, xb.size, CHUNK, xb, codes, plan, cplan
    ):
        return encode_float_bits(xb, codes, 8, 23, p, int(RNE), ovf, 0, 0, 0, 0, 32)
    return 0


# ---- branch-free nearest-even for float64 input ------------------------------------------------

_SIGN64 = np.int64(-(1 << 63))
_QNAN64 = 0x7FF8000000000000


def rne_f64_plan(p, overflow: int):
    """The constants of :func:`quantize_f64_rne` (the float64 counterpart of
    :func:`rne_f32_plan`), or None when the format needs the general kernel."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    if not (sg == 1 and hz == 1 and sub == 1 and 0 <= m < 52 and emin >= -1022 and emax <= 1023):
        return None
    sh = 52 - m
    has_inf = sp in (0, 4)
    has_nan = m > 0 if sp == 0 else sp != 3
    max_mag = ((emax + 1023) << 52) | ((sigmax - (1 << m)) << sh)
    if overflow != 1 and has_inf:
        ovf_mag, ovf_nan = 0x7FF0000000000000, 0
    elif overflow != 1 and has_nan:
        ovf_mag, ovf_nan = 0, 1
    else:
        ovf_mag, ovf_nan = max_mag, 0
    neg_zero = sp not in (2, 4)
    return (sh, (1 << (sh - 1)) - 1, (1 << sh) - 1, int(m == 0), emin + 1023, max_mag, ovf_mag,
            ovf_nan, int(has_nan), int(neg_zero), math.ldexp(1.0, emin - m + 52))  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def rne_f64_bits(b, plan):
    """:func:`rne_f32_bits` for the float64 with bits ``b`` (int64), as float64 bits."""
    sh, half_m1, low, m0, lo_field, max_mag, ovf_mag, ovf_nan, has_nan, neg_zero, c = plan
    sign = b & _SIGN64
    mag = b & 0x7FFFFFFFFFFFFFFF
    ef = mag >> 52
    odd = ((mag >> sh) & 1) | m0
    rn = (mag + half_m1 + odd) & ~low
    rs = f64_bits((bits_f64(mag) + c) - c)
    r = rs if ef < lo_field else rn
    special = ef == 2047
    is_nan = special & ((mag & 0xFFFFFFFFFFFFF) != 0)
    over = (r > max_mag) | special  # inf input behaves as an overflow
    r = ovf_mag if over else r
    nan_out = is_nan | (over & (ovf_nan == 1))
    keep_sign = (r != 0) | (neg_zero == 1)
    res = (r | sign) if keep_sign else r
    return _QNAN64 if nan_out else res


@njit(**_JIT)
def _rne64_span(lo, hi, xb, outb, plan):
    """Elements ``lo:hi`` of :func:`quantize_f64_rne` (as :func:`_rne_span`)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        nan_in = False
        for j in range(c1 - c0):
            i = np.uint64(c0) + np.uint64(j)
            b = xb[i]
            outb[i] = rne_f64_bits(b, plan)
            nan_in |= (b & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000
        todo += nan_in and has_nan == 0
    return todo


def quantize_f64_rne(xb, outb, plan, p, ovf):
    """Round-to-nearest-even of float64 input (bits as int64) in selects only: the float64
    counterpart of :func:`quantize_f32_rne` (the same steps on 64-bit words; identical to
    :func:`quantize_float_bits` with ``rnd = RNE``, tested). Returns the NaN-error count."""
    if run(xb.size, "element_rne", _rne64_span, xb.size, CHUNK, xb, outb, plan):
        rne = int(RNE)
        return quantize_float_bits(
            xb, outb, outb.view(np.float64), 11, 52, p, rne, ovf, 0, 0, 0, 0, 53
        )
    return 0


# ---- branch-free stochastic and directed rounding for float32 input ---------------------------

#: the modes of :func:`quantize_f32_select`
SELECT_MODES = (RTZ, RUP, RDN, SR)


def round_f32_plan(p, overflow: int, rnd: int, r: int):
    """The ``plan`` of :func:`quantize_f32_select` (that of :func:`rne_f32_plan` and the format's
    smallest subnormal ``2**(emin - m)``), or None when the format, mode or ``r`` needs the
    general kernel."""
    plan = rne_f32_plan(p, overflow)
    if plan is None or rnd not in SELECT_MODES or not 1 <= r <= 32:
        return None
    m, emin = p[0], p[1]
    k = m - emin  # |x| * 2**k: the multiple of the smallest subnormal (two exact steps when
    # 2**k exceeds float32's range)
    steps = (
        (math.ldexp(1.0, k),)
        if k <= 127
        else (math.ldexp(1.0, k // 2), math.ldexp(1.0, k - k // 2))
    )
    return (*plan[:10], math.ldexp(1.0, -k), *steps)


#: the element types of the select-only kernels (``io``, a literal in each span): float32 values,
#: float16 values, bfloat16 values (read and written as 16-bit bits), float32 in and codes out
IO_F32, IO_F16, IO_BF16, IO_CODES = 0, 1, 2, 3
_NO_CODES = (0, 0, 0, 0.0, 0, 0, 0, 0)  # the code plan argument of the value kernels (unused)


@njit(**_JIT, inline="always")
def _select_run(c0, c1, xb, outb, plan, cplan, io, mode, k0, k2, lo0, hk1, r):
    """Elements ``c0:c1`` of a select-only span under the rounding code ``mode`` (a literal:
    only its selects are emitted), their random indices' low words ``lo0 + j`` not wrapping
    (:func:`qemu_arrays.formats.round32.sr_word32_run`); True when one of them is a NaN."""
    nan_in = False
    for j in range(c1 - c0):  # unsigned indices: no negative-index wraparound code
        i = np.uint64(c0) + np.uint64(j)
        if io == IO_F16:
            b = half_to_f32(xb[i])
        elif io == IO_BF16:
            b = bf16_to_f32(xb[i])
        else:
            b = np.uint32(xb[i])
        w = sr_word32_run(lo0, j, hk1, k0, k2) if mode == SR else np.uint32(0)
        res = round32(b, plan, mode, w, r)
        if io == IO_F16:
            outb[i] = f32_to_half(res)
        elif io == IO_BF16:
            outb[i] = f32_to_bf16(res)
        elif io == IO_CODES:
            outb[i] = code32(b, res, cplan)
        else:
            outb[i] = res
        nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return nan_in


@njit(**_JIT, inline="always")
def _select_chunk(c0, c1, xb, outb, plan, cplan, io, mode, k0, k1, k2, base, r):
    """Elements ``c0:c1`` of a select-only span (random index of element ``c0``: ``base``),
    split where the indices' low word wraps past ``2**32``; True when one of them is a NaN."""
    lo0 = base & 0xFFFFFFFF
    hi = (base >> 32) & 0xFFFFFFFF
    nan_in = False
    while c0 < c1:  # twice at most
        s1 = min(c1, c0 + ((1 << 32) - lo0))  # the first element whose low word wrapped
        nan_in |= _select_run(c0, s1, xb, outb, plan, cplan, io, mode, k0, k2, lo0, hi ^ k1, r)
        c0, lo0, hi = s1, 0, (hi + 1) & 0xFFFFFFFF
    return nan_in


@njit(**_JIT, inline="always")
def _select_modes(lo, hi, xb, outb, plan, cplan, io, rnd, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` in chunks, each mode a literal; the number of chunks holding a NaN
    input when the format has no NaN (as :func:`_rne_span`)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        base = offset + c0  # the random bits' index of element c0 (two's complement wrap)
        if rnd == SR:
            nan_in = _select_chunk(c0, c1, xb, outb, plan, cplan, io, SR, k0, k1, k2, base, r)
        elif rnd == RTZ:
            nan_in = _select_chunk(c0, c1, xb, outb, plan, cplan, io, RTZ, k0, k1, k2, base, r)
        elif rnd == RUP:
            nan_in = _select_chunk(c0, c1, xb, outb, plan, cplan, io, RUP, k0, k1, k2, base, r)
        else:
            nan_in = _select_chunk(c0, c1, xb, outb, plan, cplan, io, RDN, k0, k1, k2, base, r)
        todo += nan_in and has_nan == 0
    return todo


@njit(**_JIT)
def _select_span(lo, hi, xb, outb, plan, rnd, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`quantize_f32_select` (see :func:`_select_modes`)."""
    return _select_modes(lo, hi, xb, outb, plan, _NO_CODES, IO_F32, rnd, k0, k1, k2, offset, r)


def quantize_f32_select(xb, outb, plan, p, rnd, ovf, k0, k1, k2, offset, r):
    """Stochastic (``r <= 32``) and directed rounding of float32 input in selects only, so the
    element loop, random bits included, vectorizes (:func:`qemu_arrays.formats.round32.round32`).
    Identical to :func:`quantize_float_bits` (tested); NaN input into a format without NaN
    takes that kernel for the whole array, as in :func:`quantize_f32_rne`. Returns the
    NaN-error count."""
    args = (xb, outb, plan, rnd, k0, k1, k2, offset, r)
    if run(xb.size, "element_rne", _select_span, xb.size, CHUNK, *args):
        return quantize_float_bits(
            xb, outb, outb.view(np.float32), 8, 23, p, rnd, ovf, k0, k1, k2, offset, r
        )
    return 0


def _make_select16_span(io):
    """The span of :func:`quantize_16_select` for float16 (``io = IO_F16``) or bfloat16 input,
    each compiled on its first use only."""

    @njit(**_JIT)
    def _select16_span(lo, hi, xh, outh, plan, rnd, k0, k1, k2, offset, r):
        return _select_modes(lo, hi, xh, outh, plan, _NO_CODES, io, rnd, k0, k1, k2, offset, r)

    return _select16_span


_SELECT16_SPANS = (_make_select16_span(IO_F16), _make_select16_span(IO_BF16))


def quantize_16_select(xh, outh, plan, rnd, k0, k1, k2, offset, r, bf: int) -> bool:
    """Stochastic and directed rounding of float16 (``bf = 0``) or bfloat16 (``bf = 1``) input,
    read and written as uint16 bits, in one pass: each element widened exactly to float32,
    rounded as :func:`quantize_f32_select` does (the same random bits, by element index) and
    narrowed back as :func:`quantize_16_rne` does. Returns False, having written nothing the
    caller may keep, when an input is a NaN and the format has none."""
    args = (xh, outh, plan, rnd, k0, k1, k2, offset, r)
    return not run(xh.size, "element_rne", _SELECT16_SPANS[bf], xh.size, CHUNK, *args)


@njit(**_JIT)
def _select_code_span(lo, hi, xb, codes, plan, cplan, rnd, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`encode_f32_select`."""
    return _select_modes(lo, hi, xb, codes, plan, cplan, IO_CODES, rnd, k0, k1, k2, offset, r)


def encode_f32_select(xb, codes, plan, p, rnd, ovf, k0, k1, k2, offset, r):
    """Stochastic and directed codes of float32 input in one select-only pass: each value
    rounded as :func:`quantize_f32_select` does, then mapped to its code as
    :func:`encode_f32_rne` does. Identical to :func:`encode_float_bits` (tested); a format
    :func:`code_plan` refuses, or NaN input into a format without NaN, takes that kernel.
    Returns the NaN-error count."""
    cplan = code_plan(p)
    args = (xb, codes, plan, cplan, rnd, k0, k1, k2, offset, r)
    if cplan is None or run(xb.size, "element_rne", _select_code_span, xb.size, CHUNK, *args):
        return encode_float_bits(xb, codes, 8, 23, p, rnd, ovf, k0, k1, k2, offset, r)
    return 0


# ---- branch-free stochastic and directed rounding for float64 input ---------------------------


def round_f64_plan(p, overflow: int, rnd: int, r: int):
    """The ``plan`` of :func:`quantize_f64_select` (:func:`round_f32_plan` for float64 input,
    ``r <= 62``), or None when the format, mode or ``r`` needs the general kernel."""
    plan = rne_f64_plan(p, overflow)
    if plan is None or rnd not in SELECT_MODES or not 1 <= r <= 62:
        return None
    m, emin = p[0], p[1]
    k = m - emin
    steps = (
        (math.ldexp(1.0, k),)
        if k <= 1023
        else (math.ldexp(1.0, k // 2), math.ldexp(1.0, k - k // 2))
    )
    return (*plan[:10], math.ldexp(1.0, -k), *steps)


@njit(**_JIT, inline="always")
def _select64_run(c0, c1, xb, outb, plan, mode, k0, k2, lo0, hk1, hk1b, r):
    """:func:`_select_run` for float64 bits (int64), the random word 64 bits wide."""
    nan_in = False
    for j in range(c1 - c0):
        i = np.uint64(c0) + np.uint64(j)
        b = xb[i]
        w = sr_word64_run(lo0, j, hk1, hk1b, k0, k2) if mode == SR else np.uint64(0)
        outb[i] = round64(b, plan, mode, w, r)
        nan_in |= (b & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000
    return nan_in


@njit(**_JIT, inline="always")
def _select64_chunk(c0, c1, xb, outb, plan, mode, k0, k1, k2, base, r):
    """:func:`_select_chunk` for :func:`_select64_run`."""
    lo0 = base & 0xFFFFFFFF
    hi = (base >> 32) & 0xFFFFFFFF
    nan_in = False
    while c0 < c1:  # twice at most
        s1 = min(c1, c0 + ((1 << 32) - lo0))
        hk1b = ((hi + 0x9E3779B9) & 0xFFFFFFFF) ^ k1
        nan_in |= _select64_run(c0, s1, xb, outb, plan, mode, k0, k2, lo0, hi ^ k1, hk1b, r)
        c0, lo0, hi = s1, 0, (hi + 1) & 0xFFFFFFFF
    return nan_in


@njit(**_JIT)
def _select64_span(lo, hi, xb, outb, plan, rnd, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`quantize_f64_select` (as :func:`_select_modes`)."""
    has_nan = plan[8]
    todo = 0
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        base = offset + c0
        if rnd == SR:
            nan_in = _select64_chunk(c0, c1, xb, outb, plan, SR, k0, k1, k2, base, r)
        elif rnd == RTZ:
            nan_in = _select64_chunk(c0, c1, xb, outb, plan, RTZ, k0, k1, k2, base, r)
        elif rnd == RUP:
            nan_in = _select64_chunk(c0, c1, xb, outb, plan, RUP, k0, k1, k2, base, r)
        else:
            nan_in = _select64_chunk(c0, c1, xb, outb, plan, RDN, k0, k1, k2, base, r)
        todo += nan_in and has_nan == 0
    return todo


def quantize_f64_select(xb, outb, plan, p, rnd, ovf, k0, k1, k2, offset, r):
    """Stochastic (``r <= 62``: two random words) and directed rounding of float64 input (bits
    as int64) in one select-only pass: :func:`quantize_f32_select` on 64-bit words
    (:func:`qemu_arrays.formats.round32.round64`). Identical to :func:`quantize_float_bits`
    (tested). Returns the NaN-error count."""
    args = (xb, outb, plan, rnd, k0, k1, k2, offset, r)
    if run(xb.size, "element_rne", _select64_span, xb.size, CHUNK, *args):
        return quantize_float_bits(
            xb, outb, outb.view(np.float64), 11, 52, p, rnd, ovf, k0, k1, k2, offset, r
        )
    return 0


# no ZeroDivisionError check (numpy's error model): the loop vectorizes (s > 0)
@njit(**_JIT, error_model="numpy")
def _int_rne_span(lo, hi, x, out, s, qlo, qhi):
    err = 0
    for j in range(hi - lo):  # unsigned indices: no wraparound code
        i = np.uint64(lo) + np.uint64(j)
        v = np.float64(x[i])
        k = min(max(np.rint(v / s), qlo), qhi) + 0.0
        out[i] = k * s
        err += v != v
    return err


def quantize_int_rne(x, out, s, lo, hi):
    """Nearest-even integer quantization with one scale, in selects only (vectorizes).

    ``out = clamp(rint(x / s), lo, hi) * s`` in float64, then cast: ``np.rint`` is the
    nearest-even rounding of the float64 quotient that :func:`qemu_arrays.formats.cores.round_int_value`
    applies, and ``+ 0.0`` turns a ``-0`` into the ``+0`` the general kernel gives. Returns the
    number of NaN inputs (an error for integer formats).
    """
    args = (x, out, float(s), float(lo), float(hi))
    return run(x.size, "element_rne", _int_rne_span, x.size, CHUNK, *args)


# ---- the pre-scan of a direct ``out=``: inputs that may raise ------------------------------------


@njit(**_JIT)
def _special_span(lo, hi, xb, mag_mask, inf_bits, zeros):
    """Elements ``lo:hi`` of :func:`count_specials`."""
    n = 0
    for j in range(hi - lo):  # unsigned indices: the loop vectorizes
        i = np.uint64(lo) + np.uint64(j)
        mag = xb[i] & mag_mask
        n += (mag > inf_bits) | ((zeros == 1) & (mag == 0))
    return n


def count_specials(xb, exponent_bits: int, mantissa_bits: int, zeros: bool) -> int:
    """How many of the IEEE bit patterns ``xb`` (uint16, uint32 or int64) are NaN, or zero
    (either sign) when ``zeros``: the inputs an element format without NaN (without zero) may
    refuse, counted in one read-only pass before a kernel writes into the caller's ``out=``."""
    width = exponent_bits + mantissa_bits
    dt = xb.dtype.type
    args = (xb, dt((1 << width) - 1), dt(((1 << exponent_bits) - 1) << mantissa_bits), int(zeros))
    return run(xb.size, "element_rne", _special_span, xb.size, CHUNK, *args)


# ---- decode through a table --------------------------------------------------------------------


@njit(**_JIT)
def _gather_span(lo, hi, codes, table, out, mask):
    """Elements ``lo:hi`` of :func:`decode_gather`; returns how many codes exceed ``mask``."""
    bad = 0
    for j in range(hi - lo):  # unsigned indices: the loop vectorizes (a gather)
        i = np.uint64(lo) + np.uint64(j)
        c = codes[i]
        out[i] = table[c & mask]
        bad += c > mask
    return bad


def decode_gather(codes, table, out) -> int:
    """``out[i] = table[codes[i]]`` for unsigned integer codes and a table of ``2**bits`` entries
    (both as bit patterns of one width: any float dtype's values copied exactly), in one pass;
    returns how many codes lie outside the table (their elements are garbage: the caller
    raises)."""
    mask = codes.dtype.type(table.size - 1)
    return run(codes.size, "element_rne", _gather_span, codes.size, CHUNK, codes, table, out, mask)


def decode_plan(p, table_bits):
    """Constants of :func:`decode_f32`: the float32 value of a code by arithmetic (the inverse
    of :func:`qemu_arrays.formats.round32.code32`), for a format :func:`code_plan` takes; the NaN bit patterns (by sign)
    are read from ``table_bits``, the float32 bits of every code's value (the decode rule of
    :func:`qemu_arrays.formats.cores.decode_code`). None where the format is not covered."""
    if code_plan(p) is None or rne_f32_plan(p, 0) is None:
        return None
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    mag_bits = eb + m
    all_mag = (1 << mag_bits) - 1
    never = 1 << 20  # above every code
    inf_mag, nan_lo, nan_hi, nan_exact = never, never, 0, never
    if sp == IEEE:
        inf_mag, nan_lo, nan_hi = ((1 << eb) - 1) << m, (((1 << eb) - 1) << m) + 1, all_mag
    elif sp in (FNUZ, P3109):
        nan_exact = 1 << mag_bits
        inf_mag = all_mag if sp == P3109 else never
    elif sp != 3:  # FN: the all-ones magnitude is NaN (FINITE: no special)
        nan_lo = nan_hi = all_mag
    nan_pos = nan_neg = 0x7FC00000
    if nan_exact != never:
        nan_pos = nan_neg = int(table_bits[nan_exact])
    elif nan_hi >= nan_lo:
        nan_pos, nan_neg = int(table_bits[nan_lo]), int(table_bits[nan_lo | (1 << mag_bits)])
    return (mag_bits, all_mag, 1 << m, (127 - bias) << m, 23 - m, math.ldexp(1.0, emin - m),
            inf_mag, nan_lo, nan_hi, nan_exact, nan_pos, nan_neg)  # fmt: skip


@njit(**_JIT)
def _decode_f32_span(lo, hi, codes, out, dplan):
    """Elements ``lo:hi`` of :func:`decode_f32`; returns 1 where a code is out of range, else 0."""
    seen = np.uint32(0)  # the OR of every code: a code exceeds the all-ones ``top`` iff this does
    for j in range(hi - lo):  # unsigned indices: the loop vectorizes, 16 lanes of 32 bits
        i = np.uint64(lo) + np.uint64(j)
        out[i], seen = value32(codes[i], seen, dplan)
    return int(seen > (1 << (dplan[0] + 1)) - 1)


def decode_f32(codes, out_bits, dplan) -> int:
    """float32 values (as uint32 bits) of the format's codes (unsigned integers) by arithmetic
    in one vectorized pass (:func:`decode_plan`); identical to the table of
    :func:`qemu_arrays.formats.cores.decode_code` (tested on every code). Returns how many codes
    lie outside the format's range (their elements are garbage: the caller raises)."""
    args = (codes, out_bits, dplan)
    return run(codes.size, "element_rne", _decode_f32_span, codes.size, CHUNK, *args)
