"""One vector of rounded additions of the emulated matmul (``docs/matmul.md``): the inner loops
of :mod:`qemu_arrays.kernels.matmul`, over a contiguous strip of output columns ``j`` for a
fixed ``k`` (``dst[j] = R(src[j] + a[i, k] * b[k, j])``, ``b``'s row contiguous).

Two implementations of the same additions, bit for bit:

* the **select-only** span (:func:`_sel_add_span`, :func:`_sel_round_span`): the float64 sum
  ``s = acc + x``, corrected by TwoSum to the exact sum rounded to odd when it may be inexact,
  then rounded into the accumulator by integer operations on its bits and selects, with the
  stochastic rounding's random bits (:func:`qemu_arrays.formats.round32.sr_event32`) generated in
  the loop: no branch and no call, so the ``j`` loop vectorizes. It covers nearest-even,
  nearest-away, toward zero, up, down and stochastic rounding (``random_bits <= 32``) into
  formats inside float64's range (:func:`sel_consts`). A lane it cannot decide (a result
  outside the format's normal range, an overflow, an infinity or NaN, a precision where round
  to odd at 53 bits is not enough) is written as a marker NaN and finished after the loop by the
  general core :func:`~qemu_arrays.formats.accumulate.add_round`;
* the **general** span (:func:`_add_span`, :func:`_round_span`) for every other mode: the fast
  path :func:`~qemu_arrays.formats.cores.round_bits_fast`, then ``add_round``.

Stochastic rounding draws event ``t`` of output element ``e`` from
``random_u(key, (e << 32) | t, r)`` in both.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qemu_arrays.formats.accumulate import add_round, as_float64, round_value
from qemu_arrays.formats.bits import bits_f64, f64_bits
from qemu_arrays.formats.cores import (
    NAN_ERROR,
    RDN,
    RNA,
    RNE,
    RTZ,
    RUP,
    SR,
    mix32,
    random_u,
    round_bits_fast,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.round32 import sr_event32

purge_stale_cache(__file__)  # formats/ changes: accumulate, cores, bits, round32 are inlined

__all__ = ["add", "rnd_round", "sel_consts"]

_JIT = {"cache": True, "nogil": True}
_INL = {"cache": True, "nogil": True, "inline": "always"}

SIGN = np.int64(-9223372036854775807 - 1)  # the sign bit of a float64, 1 << 63
MAG = np.int64(0x7FFFFFFFFFFFFFFF)
#: the value a select-only lane leaves for the general core (a signalling NaN's bits, which no
#: decided lane produces: their results are finite)
MARK = np.int64(0x7FF4000000C0FFEE)


# ---- the select-only span ------------------------------------------------------------------------


@njit(**_JIT)
def sel_consts(p, rnd, r):
    """The constants of the select-only span for the format ``p`` and the mode: ``(use, sh,
    low, half - 1, m0, lo_mag, max_mag, unsigned, zero_ok)`` as int64. ``use`` is 0 where the
    general span runs (another mode, ``r > 32``, a format beyond float64's normal range or of
    52 or more mantissa bits); ``zero_ok`` is 1 when the format keeps both signed zeros (then
    an exact zero sum is decided in the loop)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    modes = rnd in (RNE, RNA, RTZ, RUP, RDN)
    ok = (modes or (rnd == SR and r <= 32)) and 0 <= m <= 51 and emin >= -1022 and emax <= 1023
    sh = 52 - m if ok else 1
    low = (np.int64(1) << sh) - 1
    half_m1 = (np.int64(1) << (sh - 1)) - 1
    lo_mag = np.int64(max(emin + 1023, 1)) << 52
    max_mag = (np.int64(emax + 1023) << 52) | (np.int64(sigmax - (1 << m)) << sh) if ok else 0
    st0, s0, k0_, q0 = round_value(0.0, m, emin, emax, sigmax, sub, hz, sg, sp, RNE, 0, 0, 32)
    st1, s1, k1_, q1 = round_value(-0.0, m, emin, emax, sigmax, sub, hz, sg, sp, RNE, 0, 0, 32)
    z0 = f64_bits(as_float64(st0, s0, k0_, q0))
    z1 = f64_bits(as_float64(st1, s1, k1_, q1))
    zok = z0 == 0 and z1 == SIGN
    return (
        np.int64(ok),
        np.int64(sh),
        low,
        half_m1,
        np.int64(m == 0),
        lo_mag,
        np.int64(max_mag),
        np.int64(sg == 0),
        np.int64(zok),
    )


@njit(**_INL)
def _sel_bits(b, c, mode, u, r):
    """The float64 with bits ``b`` rounded into the format of ``c`` (:func:`sel_consts`) in
    selects: ``(decided, bits)``. Zeros are the caller's."""
    _use, sh, low, half_m1, m0, lo_mag, max_mag, uns, _zok = c
    mag = b & MAG
    neg = b < 0
    rem = mag & low
    trunc = mag - rem
    if mode == RNE:
        q = (mag + half_m1 + (((mag >> sh) & 1) | m0)) & ~low
    elif mode == RNA:
        q = (mag + half_m1 + 1) & ~low
    elif mode == RTZ:
        q = trunc
    elif mode == RUP:
        q = trunc + (low + 1) if (rem != 0) & (not neg) else trunc
    elif mode == RDN:
        q = trunc + (low + 1) if (rem != 0) & neg else trunc
    else:  # SR: up when u < the remainder's top r bits
        d1 = max(sh - r, 0)
        d2 = max(r - sh, 0)
        q = trunc + (low + 1) if np.int64(u) < ((rem << d2) >> d1) else trunc
    ok = (mag >= lo_mag) & (q <= max_mag) & ((uns == 0) | (not neg))
    return ok, (b & SIGN) | q


@njit(**_INL)
def _sel_lane(a0, x, c, mode, u, r, need_ts, ro_ok):
    """``R(a0 + x)`` in selects: ``(decided, bits)``."""
    s = a0 + x
    b = f64_bits(s)
    good = True
    if need_ts:  # the exact sum rounded to odd at 53 bits: step s's bits toward the error
        bb = s - a0
        e = (a0 - (s - bb)) + (x - bb)
        nz = (e > 0.0) | (e < 0.0)  # ordered: an infinite s has a NaN error, no step
        step = np.int64(-1) if (e > 0.0) != (s > 0.0) else np.int64(1)
        b = b + step if nz & ((b & 1) == 0) else b
        good = ro_ok | (e == 0.0)
    ok, v = _sel_bits(b, c, mode, u, r)
    # an exact zero sum: float64's sign is IEEE's except under DOWN (-0 unless both are +0)
    zero = (b & MAG) == 0
    if mode == RDN:
        zb = SIGN * np.int64((f64_bits(a0) | f64_bits(x)) != 0)
    else:
        zb = b
    zok = zero & (c[8] != 0)
    return (ok & good) | zok, zb if zok else v


@njit(**_INL)
def _sel_add_loop(src, dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r, need_ts, ro_ok):
    """The vector loop of :func:`_sel_add_span`: the count of undecided lanes."""
    n = src.size
    h = mix32(t ^ k2)
    nslow = 0
    for jj in range(n):
        j = np.uint64(jj)  # unsigned indices: no negative-index wraparound code
        u = sr_event32(h, ebase + jj, k0, k1, r) if mode == SR else np.uint32(0)
        ok, v = _sel_lane(src[j], xscale * xs[j], c, mode, u, r, need_ts, ro_ok)
        dst[j] = bits_f64(v if ok else MARK)
        nslow += np.int64(not ok)
    return nslow


@njit(**_INL)
def _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, mode, ovf, k0, k1, k2, r, need_ts,
                  ro_ok):  # fmt: skip
    """``dst[j] = R(src[j] + xscale * xs[j])`` as :func:`_add_span`, the loop in selects;
    returns the count of NaN errors."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    nslow = _sel_add_loop(src, dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r, need_ts, ro_ok)
    err = 0
    if nslow:
        for j in range(src.size):
            if f64_bits(dst[j]) == MARK:
                u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if mode == SR else 0
                st, s_, kept, q = add_round(
                    src[j], xscale * xs[j], m, emin, emax, sigmax, sub, hz, sg, sp, mode, ovf, u,
                    r,
                )  # fmt: skip
                err += st == NAN_ERROR
                dst[j] = as_float64(st, s_, kept, q)
    return err


@njit(**_INL)
def _sel_round_span(dst, xs, xscale, ebase, t, p, c, mode, ovf, k0, k1, k2, r):
    """``dst[j] = R(xscale * xs[j])`` as :func:`_round_span`, the loop in selects."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    n = dst.size
    h = mix32(t ^ k2)
    nslow = 0
    zok = c[8] != 0
    for jj in range(n):
        j = np.uint64(jj)
        u = sr_event32(h, ebase + jj, k0, k1, r) if mode == SR else np.uint32(0)
        b = f64_bits(xscale * xs[j])
        ok, v = _sel_bits(b, c, mode, u, r)
        z = zok & ((b & MAG) == 0)
        ok = ok | z
        dst[j] = bits_f64((b if z else v) if ok else MARK)
        nslow += np.int64(not ok)
    err = 0
    if nslow:
        for j in range(n):
            if f64_bits(dst[j]) == MARK:
                u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if mode == SR else 0
                st, s_, kept, q = round_value(
                    xscale * xs[j], m, emin, emax, sigmax, sub, hz, sg, sp, mode, ovf, u, r
                )
                err += st == NAN_ERROR
                dst[j] = as_float64(st, s_, kept, q)
    return err


# ---- the general span --------------------------------------------------------------------------


@njit(**_INL)
def _lane(a0, x, m, emin, emax, sigmax, sg, rnd, u, r, need_ts, ro_ok):
    """The fast path of ``R(a0 + x)``: ``(ok, value)``; ``ok`` False leaves the lane to the
    general core. With ``need_ts`` the float64 sum is corrected to the exact sum rounded to
    odd (TwoSum), which rounds like the exact sum when ``ro_ok``."""
    s = a0 + x
    b = f64_bits(s)
    good = True
    if need_ts:
        bb = s - a0
        e = (a0 - (s - bb)) + (x - bb)
        nz = (e > 0.0) | (e < 0.0)  # ordered: an infinite s has a NaN error, no step
        step = np.int64(1) if (e > 0.0) == (s > 0.0) else np.int64(-1)
        b = b + step * np.int64(nz and (b & 1) == 0)
        good = ro_ok or not nz
    ok, mag = round_bits_fast(b, 11, 52, m, emin, emax, sigmax, sg, rnd, u, r)
    return ok and good, bits_f64((b & SIGN) | mag)


@njit(**_INL)
def _add_span(src, dst, xs, xscale, ebase, t, p, rnd, ovf, k0, k1, k2, r, need_ts, ro_ok):
    """``dst[j] = R(src[j] + xscale * xs[j])`` (``xscale * xs[j]`` exact; ``dst`` is not
    ``src``); returns the count of NaN errors. Lane ``j`` is output element ``ebase + j``."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    n = src.size
    nslow = 0
    for j in range(n):
        a0 = src[j]
        u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
        ok, v = _lane(a0, xscale * xs[j], m, emin, emax, sigmax, sg, rnd, u, r, need_ts, ro_ok)
        dst[j] = v if ok else a0
        nslow += not ok
    err = 0
    if nslow:
        for j in range(n):
            a0 = src[j]
            x = xscale * xs[j]
            u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
            ok, v = _lane(a0, x, m, emin, emax, sigmax, sg, rnd, u, r, need_ts, ro_ok)
            if not ok:
                st, s_, kept, q = add_round(
                    a0, x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
                )
                err += st == NAN_ERROR
                dst[j] = as_float64(st, s_, kept, q)
    return err


@njit(**_INL)
def _round_span(dst, xs, xscale, ebase, t, p, rnd, ovf, k0, k1, k2, r):
    """``dst[j] = R(xscale * xs[j])`` (one rounding of an exact value); NaN-error count."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    n = dst.size
    nslow = 0
    for j in range(n):
        x = xscale * xs[j]
        u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
        b = f64_bits(x)
        ok, mag = round_bits_fast(b, 11, 52, m, emin, emax, sigmax, sg, rnd, u, r)
        dst[j] = bits_f64((b & SIGN) | mag) if ok else x
        nslow += not ok
    err = 0
    if nslow:
        for j in range(n):
            x = xscale * xs[j]
            u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
            ok, mag = round_bits_fast(f64_bits(x), 11, 52, m, emin, emax, sigmax, sg, rnd, u, r)
            if not ok:
                st, s_, kept, q = round_value(
                    x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
                )
                err += st == NAN_ERROR
                dst[j] = as_float64(st, s_, kept, q)
    return err


# ---- the entry points: the mode as a literal, so that its branches fold ------------------------


@njit(**_JIT)
def add(src, dst, xs, xscale, ebase, t, p, c, rnd, ovf, k0, k1, k2, r, need_ts, ro_ok):
    """``dst[j] = R(src[j] + xscale * xs[j])`` for every ``j`` (``xscale * xs[j]`` exact, ``dst``
    not ``src``; lane ``j`` is output element ``ebase + j``, the addition event ``t``); the
    count of NaN errors. ``c``: :func:`sel_consts` of ``p`` and the mode."""
    if c[0] != 0:
        if rnd == RNE:
            if need_ts:
                return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RNE, ovf, k0, k1, k2,
                                     r, True, ro_ok)  # fmt: skip
            return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RNE, ovf, k0, k1, k2, r,
                                 False, ro_ok)  # fmt: skip
        if rnd == SR:
            return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, SR, ovf, k0, k1, k2, r,
                                 True, ro_ok)  # fmt: skip
        if rnd == RTZ:
            return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RTZ, ovf, k0, k1, k2, r,
                                 True, ro_ok)  # fmt: skip
        if rnd == RUP:
            return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RUP, ovf, k0, k1, k2, r,
                                 True, ro_ok)  # fmt: skip
        if rnd == RDN:
            return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RDN, ovf, k0, k1, k2, r,
                                 True, ro_ok)  # fmt: skip
        return _sel_add_span(src, dst, xs, xscale, ebase, t, p, c, RNA, ovf, k0, k1, k2, r,
                             need_ts, ro_ok)  # fmt: skip
    return _add_span(src, dst, xs, xscale, ebase, t, p, rnd, ovf, k0, k1, k2, r, True, ro_ok)


@njit(**_JIT)
def rnd_round(dst, xs, xscale, ebase, t, p, c, rnd, ovf, k0, k1, k2, r):
    """``dst[j] = R(xscale * xs[j])`` (one rounding of an exact value, event ``t``); the count
    of NaN errors."""
    if c[0] != 0:
        if rnd == RNE:
            return _sel_round_span(dst, xs, xscale, ebase, t, p, c, RNE, ovf, k0, k1, k2, r)
        if rnd == SR:
            return _sel_round_span(dst, xs, xscale, ebase, t, p, c, SR, ovf, k0, k1, k2, r)
        if rnd == RTZ:
            return _sel_round_span(dst, xs, xscale, ebase, t, p, c, RTZ, ovf, k0, k1, k2, r)
        if rnd == RUP:
            return _sel_round_span(dst, xs, xscale, ebase, t, p, c, RUP, ovf, k0, k1, k2, r)
        if rnd == RDN:
            return _sel_round_span(dst, xs, xscale, ebase, t, p, c, RDN, ovf, k0, k1, k2, r)
        return _sel_round_span(dst, xs, xscale, ebase, t, p, c, RNA, ovf, k0, k1, k2, r)
    return _round_span(dst, xs, xscale, ebase, t, p, rnd, ovf, k0, k1, k2, r)
