"""numba CPU kernels for block formats (MX, NVFP4): one fused pass per block.

Each ``prange`` iteration handles one block: it finds the block's largest magnitude from the
input's bits (exact integer arithmetic), derives the block scale, then rounds every element with
the scalar cores of :mod:`formats.cores`. The semantics are those of ``docs/blocks.md``.
The input array holds IEEE bit patterns (float32 as uint32, float64 as int64) laid out as rows of
``n`` values, blocks running along each row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from formats.cores import (
    FINITE,
    NAN,
    SATURATE,
    SR,
    bit_length,
    format_code,
    has_negative_zero,
    random_u,
    round_int_value,
    round_magnitude,
)
from qemu_arrays.cpu import purge_stale_cache

purge_stale_cache(__file__)

_PAR = {"parallel": True, "cache": True, "nogil": True}
_JIT = {"cache": True, "nogil": True}

# scale rules (formats.block_spec.ScaleRule)
FLOOR = 0
CEIL = 1
EVEN = 2
RCEIL = 3


@njit(**_JIT)
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


@njit(**_JIT)
def shared_exponent(M, E, rule, mprec, emax_elem, maxsig):
    """The power-of-two block scale exponent for ``amax = M * 2^E > 0`` under ``rule``.

    ``mprec`` is the element's mantissa bits (significant bits - 1) in its top binade, and
    ``maxsig`` the significand integer of the element maximum (``max = maxsig * 2^k`` with
    ``maxsig`` odd or of ``mprec + 1`` bits); ``emax_elem`` the exponent of its top binade.
    """
    bl = bit_length(M)
    e = E + bl - 1 - emax_elem  # FLOOR: floor(log2 amax) - emax
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
    elif rule == RCEIL:
        # amax and max * 2^e share a binade: compare their significands, aligned
        blm = bit_length(maxsig)
        if (M << (blm - 1)) > (maxsig << (bl - 1)):
            e += 1
    return e


@njit(**_PAR)
def mx_kernel(
    xb, in_e, in_m, R, n, bs, ep, is_int, fb, qmin, qmax, mprec, emax_elem, maxsig,
    s_emin, s_emax, s_bias, s_nan, rule, rnd, k0, k1, k2, offset, r, idxmap, want,
    out, codes, scodes,
):  # fmt: skip
    """MX quantization with a power-of-two (E8M0-style) scale.

    ``want`` bit 1: write values to ``out``; bit 2: write element codes to ``codes``; scale
    codes always go to ``scodes`` (one per block, row-major over (row, block)).
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    nb = (n + bs - 1) // bs
    cmask = (1 << (eb + m + 1)) - 1 if is_int == 0 else (1 << (bit_length(qmax) + 1)) - 1
    use_map = idxmap.size > 1
    absmask = (np.int64(1) << (in_e + in_m)) - 1
    infb = ((np.int64(1) << in_e) - 1) << in_m
    for t in prange(R * nb):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        special = 0
        amaxb = np.int64(0)
        for i in range(start, stop):
            a = np.int64(xb[i]) & absmask  # |x| bits: ordered as the magnitudes are
            if a >= infb:
                special = 1
            elif a > amaxb:
                amaxb = a
        s_, aM, aE, spc = split_bits(amaxb, in_e, in_m)
        if special == 0:
            if aM == 0:
                e = s_emin
            else:
                e = shared_exponent(aM, aE, rule, mprec, emax_elem, maxsig)
                if e < s_emin:
                    e = s_emin
                if e > s_emax:
                    special = 1
        if special == 1:
            scodes[t] = s_nan
            for i in range(start, stop):
                if want & 1:
                    out[i] = math.nan
                if want & 2:
                    codes[i] = 0
            continue
        scodes[t] = e + s_bias
        for i in range(start, stop):
            sign, M, E, spc = split_bits(np.int64(xb[i]), in_e, in_m)
            if rnd == SR:
                idx = idxmap[i] if use_map else i
                u = random_u(k0, k1, k2, offset + idx, r)
            else:
                u = 0
            if is_int == 1:
                if M == 0:
                    k = 0
                else:
                    a = math.ldexp(float(M), E - e + fb)
                    if a == 0.0:
                        a = 5e-324  # keeps "non-zero and tiny": every mode rounds it right
                    st, k = round_int_value(-a if sign == 1 else a, qmin, qmax, rnd, u, r)
                if want & 1:
                    out[i] = math.ldexp(float(k), e - fb)
                if want & 2:
                    codes[i] = k & cmask
                continue
            if M == 0:
                st = FINITE
                s = sign if has_negative_zero(sg, hz, sp) else 0
                kept = 0
                q = 0
            else:
                st, s, kept, q = round_magnitude(
                    sign, M, E - e, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r
                )
            if want & 1:
                v = math.ldexp(float(kept), q + e)
                out[i] = -v if s == 1 else v
            if want & 2:
                codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)


@njit(**_PAR)
def nv_kernel(
    x, xb, R, n, bs, ep, sp_, tscale, rnd, k0, k1, k2, offset, r, idxmap, want,
    out, codes, scodes,
):  # fmt: skip
    """Two-level (NVFP4-style) quantization of float32 input ``x`` (``xb`` its uint32 bits).

    Per block: ``s_b = round_scale(amax_b / (6 * tscale))`` computed in float64 (exact single
    rounding, see docs/blocks.md), ``d = float32(s_b * tscale)``, element
    ``round_elem(float32(x / d))`` with the float32 quotient correctly rounded.
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp_
    nb = (n + bs - 1) // bs
    emaxv = math.ldexp(float(sigmax), emax - m)  # element max
    snan = format_code(NAN, 0, 0, 0, sm, semin, seb, sbias, ssg, ssp)
    use_map = idxmap.size > 1
    t64 = np.float64(tscale)
    for t in prange(R * nb):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        special = 0
        amax = 0.0
        for i in range(start, stop):
            if (np.int64(xb[i]) & 0x7F800000) == 0x7F800000:
                special = 1
            else:
                a = abs(np.float64(x[i]))
                if a > amax:
                    amax = a
        if special == 1:
            scodes[t] = snan
            for i in range(start, stop):
                if want & 1:
                    out[i] = math.nan
                if want & 2:
                    codes[i] = 0
            continue
        v = amax / (emaxv * t64)
        if v == 0.0:
            sst, ss, skept, sq = FINITE, 0, 0, 0
        else:
            fr, ex = math.frexp(v)
            sst, ss, skept, sq = round_magnitude(
                0, np.int64(math.ldexp(fr, 53)), ex - 53,
                sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, 0, SATURATE, 0, 0,
            )  # fmt: skip
        scodes[t] = format_code(sst, ss, skept, sq, sm, semin, seb, sbias, ssg, ssp)
        d = np.float32(math.ldexp(float(skept), sq) * t64)
        for i in range(start, stop):
            sign = (np.int64(xb[i]) >> 31) & 1
            if rnd == SR:
                idx = idxmap[i] if use_map else i
                u = random_u(k0, k1, k2, offset + idx, r)
            else:
                u = 0
            if d == 0.0:
                st, s, kept, q = FINITE, 0, 0, 0
            else:
                qv = np.float64(np.float32(x[i]) / d)
                if qv == 0.0:
                    st = FINITE
                    s = sign if has_negative_zero(sg, hz, sp) else 0
                    kept = 0
                    q = 0
                else:
                    fr, ex = math.frexp(abs(qv))
                    st, s, kept, q = round_magnitude(
                        sign, np.int64(math.ldexp(fr, 53)), ex - 53,
                        m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r,
                    )  # fmt: skip
            if want & 1:
                val = math.ldexp(float(kept), q) * np.float64(d)
                out[i] = -val if s == 1 else val
            if want & 2:
                codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)


@njit(**_PAR)
def block_amax(x, R, n, bs, out):
    """Largest finite magnitude of each block (float64), NaN when the block holds inf/NaN."""
    nb = (n + bs - 1) // bs
    for t in prange(R * nb):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        a = 0.0
        for i in range(start, stop):
            v = abs(np.float64(x[i]))
            if not v < math.inf:
                a = math.nan
                break
            a = max(a, v)
        out[t] = a
