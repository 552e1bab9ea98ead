"""numba CPU kernels: ``prange`` loops over the scalar cores of :mod:`qemu_arrays.formats.cores`.

One compiled kernel per input bit width (float32 bits, float64 bits); formats, rounding modes and
policies are run-time integer parameters, so adding a format never compiles anything new.
Compilation is lazy (first call) and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from qemu_arrays.formats.bits import bits_f32, f32_bits
from qemu_arrays.formats.cores import (
    NAN_ERROR,
    RNE,
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

_PAR = {"parallel": True, "cache": True, "nogil": True}
_JIT_NOPAR = {"cache": True, "nogil": True}


purge_stale_cache(__file__)

SMALL = 1 << 15  # below this many elements a kernel runs on the calling thread alone


@contextmanager
def threads_for(n: int):
    """Run small arrays on one thread: waking the pool costs more than the work (and, on a
    loaded machine, can cost milliseconds). Results do not depend on the thread count."""
    if n >= SMALL:
        yield
        return
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


CHUNK = 4096  # elements per parallel task; the inner loop is a plain range the compiler keeps tight


@njit(cache=True, nogil=True, inline="always")
def _quantize_span(xb, outb, outf, lo, hi, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`quantize_float_bits`; returns the NaN-error count.

    Inlined with ``rnd`` a literal for the common modes, so the compiler drops the branches
    on the mode from the element loop.
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    sign_mask = 1 << (in_e + in_m)
    sub_scale = math.ldexp(1.0, emin - m)
    err = 0
    for i in range(lo, hi):
        b = np.int64(xb[i])
        u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
        ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
        if ok:
            outb[i] = (b & sign_mask) | mag
            continue
        ok, s, kept = round_subnormal_fast(b, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r)
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


@njit(**_PAR)
def quantize_float_bits(xb, outb, outf, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the values.

    ``outb`` and ``outf`` are the same output buffer viewed as bits and as floats. Each element
    takes the first path that applies: the in-range fast path on its own bits, the subnormal
    fast path, or the general core; all three give the general core's result.
    """
    n = xb.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        if rnd == RNE:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, RNE, ovf, k0, k1, k2, offset, r
            )
        elif rnd == SR:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, SR, ovf, k0, k1, k2, offset, r
            )
        else:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r
            )
    return err


@njit(**_PAR)
def encode_float_bits(xb, codes, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the format's codes."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    in_bias = (1 << (in_e - 1)) - 1
    in_mmask = (1 << in_m) - 1
    n = xb.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
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


@njit(**_PAR)
def decode_codes(codes, out, p):
    """Values (float64) of the format's codes."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    for i in prange(codes.size):
        out[i] = decode_code(np.int64(codes[i]), m, emin, eb, bias, sub, hz, sg, sp)


@njit(**_PAR)
def quantize_int(x, out, codes, scale, zero_point, qmin, qmax, rnd, k0, k1, k2, offset, r, want):
    """Integer (additive) quantization: ``k = clamp(round(x / s) + z)``.

    ``scale`` and ``zero_point`` hold one value or one per element. ``want`` 1 writes the
    dequantized value ``(k - z) * s`` to ``out``, 2 writes the code ``k`` (two's complement,
    masked to the storage width by the caller) to ``codes``.
    """
    err = 0
    ns = scale.size
    nz = zero_point.size
    for i in prange(x.size):
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


@njit(**_PAR)
def quantize_f32_rne(xb, outb, plan, p, ovf):
    """Round-to-nearest-even of float32 input in selects only, so the element loop vectorizes.

    In range it rounds the magnitude bits in place; below the smallest normal it adds and
    subtracts ``C = 2**(emin - m + 23)`` in float32, whose own nearest-even rounding is then the
    format's (the grid spacing there is ``ulp(C)``); specials and overflow are selected by the
    policy. NaN into a format without NaN is left to the general core. Identical to
    :func:`quantize_float_bits` with ``rnd = RNE`` (tested).
    """
    has_nan = plan[8]
    n = xb.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        nan_in = False
        for j in range(hi - lo):  # unsigned indices: no negative-index wraparound code
            i = np.uint64(lo) + np.uint64(j)
            b = xb[i]
            outb[i] = rne32(b, plan)  # rne_f32_bits on 32-bit words: twice the vector lanes
            nan_in |= (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        if nan_in and has_nan == 0:
            err += _rne_general(xb, outb, lo, hi, p, ovf)
    return err


@njit(**_JIT_NOPAR)
def _rne_general(xb, outb, lo, hi, p, ovf):
    """NaN inputs into a format without NaN: the policy's answer through the general core."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    err = 0
    for i in range(lo, hi):
        b = np.int64(xb[i])
        if (b & 0x7F800000) == 0x7F800000 and (b & 0x7FFFFF) != 0:
            st, s, kept, q = round_ieee_bits(
                b, 8, 23, m, emin, emax, sigmax, sub, hz, sg, sp, RNE, ovf, 0, 32
            )
            if st == NAN_ERROR:
                err += 1
            outb[i] = ieee_bits(st, s, kept, q, 8, 23)
    return err


@njit(**_PAR, error_model="numpy")  # no ZeroDivisionError check: the loop vectorizes (s > 0)
def quantize_int_rne(x, out, s, lo, hi):
    """Nearest-even integer quantization with one scale, in selects only (vectorizes).

    ``out = clamp(rint(x / s), lo, hi) * s`` in float64, then cast: ``np.rint`` is the
    nearest-even rounding of the float64 quotient that :func:`qemu_arrays.formats.cores.round_int_value`
    applies, and ``+ 0.0`` turns a ``-0`` into the ``+0`` the general kernel gives. Returns the
    number of NaN inputs (an error for integer formats).
    """
    n = x.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo_i = c * CHUNK
        for j in range(min(n, lo_i + CHUNK) - lo_i):  # unsigned indices: no wraparound code
            i = np.uint64(lo_i) + np.uint64(j)
            v = np.float64(x[i])
            k = min(max(np.rint(v / s), lo), hi) + 0.0
            out[i] = k * s
            err += v != v
    return err
