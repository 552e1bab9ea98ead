"""numba CPU kernels for block formats (MX, NVFP4): one fused pass per block.

Each block is handled in one pass: its largest magnitude from the input's bits (exact integer
arithmetic), the block scale, then every element rounded with the scalar cores of
:mod:`qemu_arrays.formats.cores`. The semantics are those of ``docs/blocks.md``. Every kernel is a serial
span over a range of blocks (or of tasks of ``_CH`` blocks), run on the calling thread for small
arrays and in chunks on numba's thread pool for large ones (:func:`qemu_arrays.kernels.runtime.run`).
The input array holds IEEE bit patterns (float32 as uint32, float64 as int64) laid out as rows of
``n`` values, blocks running along each row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from qemu_arrays.formats.bits import bits_f32, bits_f64, f32_bits, f64_bits
from qemu_arrays.formats.block_cores import (  # scale rules: qemu_arrays.formats.block_spec.ScaleRule
    CEIL,
    EVEN,
    FLOOR,
    RCEIL,
    mx_float_general,
    shared_exponent,
    split_bits,
)
from qemu_arrays.formats.cores import (
    FINITE,
    NAN,
    SATURATE,
    SR,
    bit_length,
    format_code,
    has_negative_zero,
    random_u,
    round_bits_fast,
    round_int_value,
    round_magnitude,
    round_subnormal_fast,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.rne32 import rne32
from qemu_arrays.kernels import elements as _cpu
from qemu_arrays.kernels import simd as cpu_simd
from qemu_arrays.kernels.runtime import run
from qemu_arrays.kernels.simd import amax_bits16, amax_bits32, nv_scale32, prefetch

# the kernels call cpu.py njit functions and the cpu_simd intrinsics
purge_stale_cache(__file__, _cpu.__file__, cpu_simd.__file__)

_PAR = {"parallel": True, "cache": True, "nogil": True}
_JIT = {"cache": True, "nogil": True}
_GCH = 64  # blocks per parallel task of the general kernels
# no ZeroDivisionError check on float division (it stops the loop from vectorizing)
_JIT_NP = {**_JIT, "error_model": "numpy"}


@njit(cache=True, nogil=True, inline="always")
def _pow2_bits(k):
    """float32 bits of ``2**k`` for ``-149 <= k <= 127`` (subnormal below ``2**-126``)."""
    return ((k + 127) << 23) if k >= -126 else (1 << (k + 149))


@njit(**_JIT)
def _mx_span(
    t0, t1, xb, in_e, in_m, R, n, bs, ep, is_int, fb, qmin, qmax, mprec, emax_elem, maxsig,
    s_emin, s_emax, s_bias, s_nan, rule, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
    out, outb, codes, scodes, vec, plan,
):  # fmt: skip
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`mx_kernel`."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    nb = (n + bs - 1) // bs
    cmask = (1 << (eb + m + 1)) - 1 if is_int == 0 else (1 << (bit_length(qmax) + 1)) - 1
    use_map = idxmap.size > 1
    absmask = (np.int64(1) << (in_e + in_m)) - 1
    signmask = np.int64(1) << (in_e + in_m)
    infb = ((np.int64(1) << in_e) - 1) << in_m
    emask = (np.int64(1) << in_e) - 1
    in_bias = (np.int64(1) << (in_e - 1)) - 1
    in_mmask = (np.int64(1) << in_m) - 1
    fast_ok = fast == 1 and is_int == 0 and m <= in_m
    fin = np.int64(FINITE)  # typed, not literal: one compile of format_code for every kernel
    for t in range(t0, t1):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        amaxb = np.int64(0)
        for i in range(start, stop):
            a = np.int64(xb[i]) & absmask  # |x| bits: ordered as the magnitudes are
            amaxb = max(amaxb, a)
        special = 1 if amaxb >= infb else 0
        if special == 0:
            s_, aM, aE, spc = split_bits(amaxb, in_e, in_m)
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
        if vec == 1:
            inv = bits_f32(_pow2_bits(-e))
            sc2 = bits_f32(_pow2_bits(e))
            for i in range(start, stop):
                rb = rne32(f32_bits(bits_f32(xb[i]) * inv), plan)
                out[i] = bits_f32(rb) * sc2
            continue
        eshift = np.int64(e) << in_m
        sub_scale = math.ldexp(1.0, emin - m + e)
        for i in range(start, stop):
            b = np.int64(xb[i])
            if rnd == SR:
                idx = idxmap[i] if use_map else i
                u = random_u(k0, k1, k2, offset + idx, r)
            else:
                u = 0
            if fast_ok:
                ef = (b >> in_m) & emask
                if ef != 0 and 1 <= ef - e < emask:
                    ok, mag = round_bits_fast(
                        b - eshift, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r
                    )
                    if ok:
                        if want & 2:
                            cef = (mag >> in_m) - in_bias + bias
                            cmf = (mag & in_mmask) >> (in_m - m)
                            codes[i] = (((b >> (in_e + in_m)) & sg) << (eb + m)) | (cef << m) | cmf
                        if want & 1:
                            oef = (mag >> in_m) + e
                            if 1 <= oef < emask:  # always, for float32 -> float32: defensive
                                outb[i] = (b & signmask) | (mag + eshift)
                                continue
                        else:
                            continue
                    else:
                        ok, s, kept = round_subnormal_fast(
                            b - eshift, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r
                        )
                        if ok:  # an element subnormal: kept * 2^(emin - m), times 2^e
                            if want & 2:
                                codes[i] = format_code(
                                    fin, s, kept, emin - m, m, emin, eb, bias, sg, sp
                                )
                            if want & 1:
                                v = np.float64(kept) * sub_scale
                                out[i] = -v if s == 1 else v  # one rounding, as below
                            continue
            sign, M, E, spc = split_bits(b, in_e, in_m)
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
            v, c = mx_float_general(sign, M, E, e, ep, rnd, u, r)
            if want & 1:
                out[i] = v
            if want & 2:
                codes[i] = c

    return 0


def mx_kernel(
    xb, in_e, in_m, R, n, bs, ep, is_int, fb, qmin, qmax, mprec, emax_elem, maxsig,
    s_emin, s_emax, s_bias, s_nan, rule, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
    out, outb, codes, scodes, vec, plan,
):  # fmt: skip
    """MX quantization with a power-of-two (E8M0-style) scale.

    ``vec == 1`` (float32 input and output, float elements, nearest-even, values only): each
    block's elements take the select-only loop of :func:`qemu_arrays.kernels.elements.quantize_f32_rne`
    (``plan`` from ``rne_f32_plan`` under saturation) on ``x * 2**-e``, and the result is
    multiplied back by ``2**e``; both products are exact where the result is non-zero.

    ``want`` bit 1: write values to ``out`` (``outb`` is the same buffer viewed as IEEE bits);
    bit 2: write element codes to ``codes``; scale codes always go to ``scodes`` (one per
    block, row-major over (row, block)). ``fast == 0`` turns the fast path off (tests compare).

    Fast path (float elements): dividing by the scale ``2^e`` is subtracting ``e`` from the
    exponent field, so an element whose shifted bits are still a normal IEEE value is rounded by
    :func:`~qemu_arrays.formats.cores.round_bits_fast` on those bits, and the result is scaled back by adding
    ``e`` to the exponent field when that stays normal. Everything else (zeros, subnormals,
    overflow, results outside the normal range) takes the general path, which gives the same
    bits by the contract of ``round_bits_fast``.
    """
    args = (
        xb, in_e, in_m, R, n, bs, ep, is_int, fb, qmin, qmax, mprec, emax_elem, maxsig,
        s_emin, s_emax, s_bias, s_nan, rule, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
        out, outb, codes, scodes, vec, plan,
    )  # fmt: skip
    nblk = R * -(-n // bs)
    run(xb.size, "block", _mx_span, nblk, _GCH, *args)


@njit(**_JIT)
def _nv_span(
    t0, t1, x, xb, R, n, bs, ep, sp_, tscale, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
    out, codes, scodes, vec, plan,
):  # fmt: skip
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`nv_kernel`."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp_
    nb = (n + bs - 1) // bs
    emaxv = math.ldexp(float(sigmax), emax - m)  # element max
    # typed, not literal, arguments: one compile of each core for every kernel
    zero, sat = np.int64(0), np.int64(SATURATE)
    snan = format_code(np.int64(NAN), zero, zero, zero, sm, semin, seb, sbias, ssg, ssp)
    t64 = np.float64(tscale)
    fast_ok = fast == 1 and m <= 23
    for t in range(t0, t1):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        amaxb = np.int64(0)
        for i in range(start, stop):
            amaxb = max(amaxb, np.int64(xb[i]) & 0x7FFFFFFF)
        if amaxb >= 0x7F800000:  # inf or NaN in the block
            scodes[t] = snan
            for i in range(start, stop):
                if want & 1:
                    out[i] = math.nan
                if want & 2:
                    codes[i] = 0
            continue
        amax = np.float64(bits_f32(amaxb))
        v = amax / (emaxv * t64)
        if v == 0.0:
            sst, ss, skept, sq = FINITE, 0, 0, 0
        else:
            fr, ex = math.frexp(v)
            sst, ss, skept, sq = round_magnitude(
                zero, np.int64(math.ldexp(fr, 53)), ex - 53,
                sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, zero, sat, zero, zero,
            )  # fmt: skip
        scodes[t] = format_code(sst, ss, skept, sq, sm, semin, seb, sbias, ssg, ssp)
        d = np.float32(math.ldexp(float(skept), sq) * t64)
        # nearest-even, values only: the select-only loop, where d is normal and no quotient
        # overflows float32 (extreme tensor scales keep the general path)
        if vec == 1 and d >= 1.1754944e-38 and bits_f32(amaxb) / d < np.float32(1.0e38):
            for i in range(start, stop):
                pb = rne32(f32_bits(np.float32(x[i]) / d), plan)
                out[i] = bits_f32(pb) * d
            continue
        _nv_block(
            x, xb, start, stop, d, ep, rnd, k0, k1, k2, offset, r, idxmap, want, fast_ok,
            out, codes,
        )  # fmt: skip

    return 0


def nv_kernel(
    x, xb, R, n, bs, ep, sp_, tscale, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
    out, codes, scodes, vec, plan,
):  # fmt: skip
    """Two-level (NVFP4-style) quantization of float32 input ``x`` (``xb`` its uint32 bits).

    Per block: ``s_b = round_scale(amax_b / (6 * tscale))`` computed in float64 (exact single
    rounding, see docs/blocks.md), ``d = float32(s_b * tscale)``, element
    ``round_elem(float32(x / d))`` with the float32 quotient correctly rounded.

    ``vec == 1`` (float32 output, nearest-even, values only): the quotient's bits are rounded by
    :func:`qemu_arrays.kernels.elements.rne_f32_bits` (``plan`` under saturation), selects only.

    Fast path (``fast == 1``): a quotient that is a normal float32 is rounded on its own bits by
    :func:`~qemu_arrays.formats.cores.round_bits_fast`, and the value ``p * d`` is one float32 product
    (the exact product rounded once, as the general path's float64 product stored to float32).
    """
    args = (
        x, xb, R, n, bs, ep, sp_, tscale, rnd, k0, k1, k2, offset, r, idxmap, want, fast,
        out, codes, scodes, vec, plan,
    )  # fmt: skip
    run(x.size, "block", _nv_span, R * -(-n // bs), _GCH, *args)


@njit(**_JIT)
def _nv_block(
    x, xb, start, stop, d, ep, rnd, k0, k1, k2, offset, r, idxmap, want, fast_ok, out, codes,
):  # fmt: skip
    """Elements ``start:stop`` of one NVFP4 block with the float32 divisor ``d`` (the general
    loop of :func:`nv_kernel`, also the fallback of :func:`nv_f32_rne`)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    use_map = idxmap.size > 1
    out32 = out.itemsize == 4
    sub_scale = math.ldexp(1.0, emin - m)
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
            qf = np.float32(x[i]) / d
            if fast_ok:
                qb = np.int64(f32_bits(qf))
                ok, mag = round_bits_fast(qb, 8, 23, m, emin, emax, sigmax, sg, rnd, u, r)
                if ok:
                    if want & 2:
                        cef = (mag >> 23) - 127 + bias
                        cmf = (mag & 0x7FFFFF) >> (23 - m)
                        codes[i] = ((sign & sg) << (eb + m)) | (cef << m) | cmf
                    if want & 1:
                        pv = bits_f32((qb & 0x80000000) | mag)
                        if out32:
                            out[i] = pv * d
                        else:
                            out[i] = np.float64(pv) * np.float64(d)
                    continue
                ok, s, kept = round_subnormal_fast(qb, 8, 23, m, emin, sub, hz, sg, sp, rnd, u, r)
                if ok:  # an element subnormal: kept * 2^(emin - m)
                    if want & 2:
                        codes[i] = format_code(FINITE, s, kept, emin - m, m, emin, eb, bias, sg, sp)
                    if want & 1:
                        pv = np.float32(np.float64(kept) * sub_scale)  # exact
                        if out32:
                            val32 = pv * d
                            out[i] = -val32 if s == 1 else val32
                        else:
                            val = np.float64(pv) * np.float64(d)
                            out[i] = -val if s == 1 else val
                    continue
            qv = np.float64(qf)
            if qv == 0.0:
                st = FINITE
                s = sign if has_negative_zero(sg, hz, sp) else 0
                kept = 0
                q = 0
            else:
                # a quotient that overflowed float32 (tiny given tensor scale) saturates, as any
                # magnitude beyond the element maximum does
                fr, ex = math.frexp(min(abs(qv), 1.0e300))
                st, s, kept, q = round_magnitude(
                    sign, np.int64(math.ldexp(fr, 53)), ex - 53,
                    m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r,
                )  # fmt: skip
        if want & 1:
            val = math.ldexp(float(kept), q) * np.float64(d)
            out[i] = -val if s == 1 else val
        if want & 2:
            codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)


# ---- float32 nearest-even fast kernels: whole blocks in flat order ------------------------------

_CH = 128  # blocks per parallel task


_f64_bits = f64_bits  # the bit casts of qemu_arrays.formats.bits
_bits_f64 = bits_f64


@njit(cache=True, nogil=True, inline="always")
def _amax_bits(xb, base, bs):
    """Largest magnitude bit pattern (sign cleared) of the float32 bits ``xb[base:base + bs]``."""
    if bs == 32:  # one vector load and reduction (numba's scalar max stays unvectorized)
        return amax_bits32(xb, base)
    if bs == 16:
        return amax_bits16(xb, base)
    a = np.uint32(0)
    for j in range(bs):
        a = max(a, xb[base + np.uint64(j)] & np.uint32(0x7FFFFFFF))
    return np.int64(a)


@njit(cache=True, nogil=True)
def _exp_subnormal_amax(a, rule, mprec, emax_elem, maxsig):
    s_, aM, aE, spc = split_bits(a, 8, 23)
    return shared_exponent(aM, aE, rule, mprec, emax_elem, maxsig)


@njit(cache=True, nogil=True, inline="always")
def block_exponent_f32(a, rule, sh, mref, mprec, emax_elem, maxsig):
    """:func:`shared_exponent` of a block whose largest magnitude has the float32 bits ``a``
    (finite, non-zero), on the bits: rounding the significand to ``mprec`` fraction bits (``sh =
    23 - mprec`` bits dropped) carries into the exponent field exactly when the rounded value
    reaches the next binade; RCEIL compares the fraction field with ``mref``, the fraction of
    the element maximum's significand."""
    ef = a >> 23
    if ef == 0:
        return _exp_subnormal_amax(a, rule, mprec, emax_elem, maxsig)
    if rule == CEIL:
        ef = (a + ((1 << sh) - 1)) >> 23
    elif rule == EVEN:
        ef = (a + ((1 << (sh - 1)) - 1) + ((a >> sh) & 1)) >> 23
    elif rule == RCEIL:
        ef += (a & 0x7FFFFF) > mref
    return ef - 127 - emax_elem


def block_exponent_consts(mprec, maxsig):
    """``(sh, mref)`` of :func:`block_exponent_f32`, or None where it does not apply."""
    blm = int(maxsig).bit_length()
    if not (0 <= mprec < 23 and 1 <= blm <= 24):
        return None
    return 23 - mprec, (int(maxsig) << (24 - blm)) - (1 << 23)


@njit(cache=True, nogil=True, inline="always")
def _prefetch_block(xb, base, bs):
    """Prefetch the block one task (``_CH`` blocks) after the one at ``base``, one hint per
    64 bytes, so that the next task's maxima read from cache rather than memory (measured:
    the maxima phase otherwise stalls on memory while the element phase, computing on cached
    data, leaves the memory idle). The address is clamped to the array."""
    q = min(base + np.uint64(_CH) * np.uint64(bs), np.uint64(xb.size - 1))
    for j in range(0, bs, 16):
        prefetch(xb, q + np.uint64(j))


@njit(cache=True, nogil=True, inline="always")
def _mx_elems(xb, out, base, nj, inv, sc2, plan):
    """``out = rne(x * inv) * sc2`` over ``nj`` elements from ``base`` (select-only)."""
    for j in range(nj):
        i = base + np.uint64(j)
        rb = rne32(f32_bits(bits_f32(xb[i]) * inv), plan)
        out[i] = bits_f32(rb) * sc2


@njit(cache=True, nogil=True, inline="always")
def _nv_elems(x, out, base, nj, d, plan):
    """``out = rne(x / d) * d`` over ``nj`` elements from ``base`` (select-only)."""
    for j in range(nj):
        i = base + np.uint64(j)
        pb = rne32(f32_bits(x[i] / d), plan)
        out[i] = bits_f32(pb) * d


@njit(cache=True, nogil=True, inline="always")
def _block_exponent_select(a, rule, sh, mref, emax_elem):
    """:func:`block_exponent_f32` for a normal maximum ``a``, in selects only (no call, no
    branch): a wrong value for a subnormal maximum, which the caller fixes up."""
    ef = a >> 23
    ceil = (a + ((1 << sh) - 1)) >> 23
    even = (a + ((1 << (sh - 1)) - 1) + ((a >> sh) & 1)) >> 23
    rceil = ef + ((a & 0x7FFFFF) > mref)
    r = ef if rule == FLOOR else (ceil if rule == CEIL else (even if rule == EVEN else rceil))
    return r - 127 - emax_elem


@njit(cache=True, nogil=True, inline="always")
def _pow2_bits_sel(k):
    """:func:`_pow2_bits` in selects only (shift counts kept in range)."""
    return ((k + 127) << 23) if k >= -126 else (1 << max(min(k + 149, 62), 0))


@njit(cache=True, nogil=True, inline="always")
def _task_blocks(bases, sidx, t0, nt, nbf, n, nb, bs):
    """Where the ``nt`` whole blocks from whole block ``t0`` lie: ``bases[k]``, the index of
    the block's first element in rows of ``n`` elements holding ``nbf`` whole blocks each (a
    short last block, if any, left to the caller), and ``sidx[k]``, the index of its scale in
    rows of ``nb`` scales; one division per task, then increments. Rows of whole blocks need
    neither (blocks and scales are then consecutive): nothing is filled."""
    if nbf == nb:  # rows of whole blocks: nothing to fill, see _block_base
        return
    row = t0 // nbf
    b = t0 - row * nbf
    for k in range(nt):
        bases[k] = np.uint64(row) * np.uint64(n) + np.uint64(b) * np.uint64(bs)
        sidx[k] = row * nb + b
        b += 1
        if b == nbf:
            b = 0
            row += 1


@njit(cache=True, nogil=True, inline="always")
def _block_base(bases, t0, k, bs, whole):
    """First element of block ``k`` of the task from ``t0`` (see :func:`_task_blocks`)."""
    return (np.uint64(t0) + np.uint64(k)) * np.uint64(bs) if whole else bases[k]


@njit(cache=True, nogil=True, inline="always")
def _store_scales(scodes, sc_loc, sidx, t0, nt, whole):
    if whole:  # rows of whole blocks: the task's scales are contiguous
        for k in range(nt):
            scodes[np.uint64(t0) + np.uint64(k)] = sc_loc[k]
    else:
        for k in range(nt):
            scodes[sidx[k]] = sc_loc[k]


@njit(**_JIT)
def _mx_f32_span(
    c0, c1, xb, out, nblk, n, nb, bs, rule, sh, mref, emax_elem, s_emin, s_emax, s_bias, s_nan,
    plan, scodes,
):  # fmt: skip
    """Tasks ``c0:c1`` (of ``_CH`` blocks each) of :func:`mx_f32_rne`; returns the number of
    blocks left to the general kernel."""
    nbf = n // bs
    whole = nbf == nb
    todo = 0
    bases = np.empty(_CH, dtype=np.uint64)
    sidx = np.empty(_CH, dtype=np.int64)
    am = np.empty(_CH, dtype=np.int64)
    invs = np.empty(_CH, dtype=np.float32)
    muls = np.empty(_CH, dtype=np.float32)
    sc_loc = np.empty(_CH, dtype=np.uint8)
    for c in range(c0, c1):
        t0 = c * _CH
        nt = min(nblk, t0 + _CH) - t0
        _task_blocks(bases, sidx, t0, nt, nbf, n, nb, bs)
        # first the block maxima, then the scales in a select-only loop across blocks (it
        # vectorizes; a subnormal maximum is left to the general kernel) ...
        for k in range(nt):
            am[k] = _amax_bits(xb, _block_base(bases, t0, k, bs, whole), bs)
        nnan = 0
        nsub = 0
        for k in range(nt):
            a = am[k]
            e = _block_exponent_select(a, rule, sh, mref, emax_elem)
            e = s_emin if a == 0 else max(e, s_emin)
            nan_block = (a >= 0x7F800000) | (e > s_emax)
            nnan += nan_block
            nsub += (a < 0x00800000) & (a != 0)
            e = min(e, s_emax)
            sc_loc[k] = s_nan if nan_block else e + s_bias
            invs[k] = bits_f32(_pow2_bits_sel(-e))
            muls[k] = bits_f32(_pow2_bits_sel(e))
        todo += nsub
        _store_scales(scodes, sc_loc, sidx, t0, nt, whole)
        # ... then the elements (asking for the next task's blocks meanwhile), and last the
        # blocks with NaN or inf
        for k in range(nt):
            base = _block_base(bases, t0, k, bs, whole)
            _prefetch_block(xb, base, bs)
            if bs == 32:  # a literal trip count: the compiler unrolls and vectorizes
                _mx_elems(xb, out, base, 32, invs[k], muls[k], plan)
            else:
                _mx_elems(xb, out, base, bs, invs[k], muls[k], plan)
        if nnan:
            for k in range(nt):
                if sc_loc[k] == s_nan:
                    base = _block_base(bases, t0, k, bs, whole)
                    for j in range(bs):
                        out[base + np.uint64(j)] = np.float32(math.nan)
    return todo


def mx_f32_rne(
    xb, out, nblk, n, nb, bs, rule, sh, mref, emax_elem, s_emin, s_emax, s_bias, s_nan, plan,
    scodes,
):  # fmt: skip
    """MX values of float32 input, nearest-even: the ``nblk`` whole blocks of rows of ``n``
    elements (``n // bs`` of them per row; a short last block of each row is left to the
    caller), scale codes into rows of ``nb`` scales.

    Same results as :func:`mx_kernel` with ``vec == 1`` (tested): the block maximum is a vector
    reduction (:func:`qemu_arrays.kernels.simd.amax_bits32`), the scale exponent comes from its
    bits (:func:`block_exponent_f32` for a normal maximum, in selects), and the elements take
    the select-only loop of :func:`qemu_arrays.kernels.elements.rne_f32_bits` on ``x * 2**-e`` times
    ``2**e``. Returns the number of blocks whose maximum is subnormal: when not 0, the caller
    runs the general kernel :func:`mx_kernel` instead (this kernel then needs no general core,
    and compiles in a fraction of the time).
    """
    args = (
        xb, out, nblk, n, nb, bs, rule, sh, mref, emax_elem, s_emin, s_emax, s_bias, s_nan, plan,
        scodes,
    )  # fmt: skip
    return run(nblk * bs, "block", _mx_f32_span, -(-nblk // _CH), 1, *args)


@njit(cache=True, nogil=True, inline="always")
def rne_scale_f64(v, sp):
    """``(value, code)`` of the finite ``v >= 0`` rounded to nearest-even into a signed format
    with subnormals, saturating (the NVFP4 block scale), on the float64 bits of ``v``; the same
    select-only scheme as :func:`qemu_arrays.kernels.elements.rne_f32_bits` (``sp`` from
    :func:`rne_scale_plan`)."""
    sh, half_m1, low, m0, lo_field, max_mag, c, sm, bias = sp
    mag = _f64_bits(v)
    ef = mag >> 52
    odd = ((mag >> sh) & 1) | m0
    rn = (mag + half_m1 + odd) & ~low
    vc = v + c  # rounds v onto the subnormal grid: ulp(c) is the subnormal quantum
    rs = _f64_bits(vc - c)
    r = min(rs if ef < lo_field else rn, max_mag)
    val = _bits_f64(r)
    rf = r >> 52
    code_n = ((rf - 1023 + bias) << sm) | ((r >> sh) & ((1 << sm) - 1))
    # a subnormal (or zero) scale: its significand, the low bits of c + val = vc (on the bits:
    # no float-to-int conversion, which has no vector form on AVX2)
    code_s = _f64_bits(vc) - _f64_bits(c)
    return val, (code_n if rf >= lo_field else code_s)


def rne_scale_plan(sp):
    """Constants of :func:`rne_scale_f64` for scale format parameters ``sp``, or None."""
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp
    if not (ssub == 1 and shz == 1 and 0 <= sm < 52 and semin >= -1022 and semax <= 1023):
        return None
    sh = 52 - sm
    max_mag = ((semax + 1023) << 52) | ((ssigmax - (1 << sm)) << sh)
    return (
        sh, (1 << (sh - 1)) - 1, (1 << sh) - 1, int(sm == 0), semin + 1023, max_mag,
        math.ldexp(1.0, semin - sm + 52), sm, sbias,
    )  # fmt: skip


def rne_scale_plan32(sp):
    """Constants of the float32 scale step of :func:`nv_f32_rne` for scale format parameters
    ``sp`` (a signed format with subnormals and at least one fraction bit, whose normal range
    lies inside float32's), or None: ``(sh, half_m1, low, tie, min_normal, max_mag, sm,
    bias)`` on float32 bits."""
    sm, semin, semax, ssigmax, ssub, shz, ssg, ssp, seb, sbias = sp
    if not (ssub == 1 and shz == 1 and 1 <= sm <= 20 and semin >= -126 and semax <= 127):
        return None
    sh = 23 - sm
    max_mag = ((semax + 127) << 23) | ((ssigmax - (1 << sm)) << sh)
    return (sh, (1 << (sh - 1)) - 1, (1 << sh) - 1, 1 << (sh - 1), (semin + 127) << 23,
            max_mag, sm, sbias)  # fmt: skip


_NEAR = 8  # float32 ulps around a scale-format midpoint where the float32 quotient is not trusted


@njit(**_JIT_NP)
def _nv_f32_span(
    c0, c1, x, xb, out, nblk, n, nb, bs, emaxv, tscale, splan, splan32, snan, plan, scodes,
):  # fmt: skip
    """Tasks ``c0:c1`` (of ``_CH`` blocks each) of :func:`nv_f32_rne`; returns the number of
    blocks left to the general kernel."""
    t64 = np.float64(tscale)
    div = emaxv * t64
    rdiv = np.float32(1.0 / div)
    nbf = n // bs
    whole = nbf == nb
    todo = 0
    bases = np.empty(_CH, dtype=np.uint64)
    sidx = np.empty(_CH, dtype=np.int64)
    sc_loc = np.empty(_CH, dtype=np.uint8)
    am = np.empty(_CH, dtype=np.uint32)
    ds = np.empty(_CH, dtype=np.float32)
    for c in range(c0, c1):
        t0 = c * _CH
        t1 = min(nblk, t0 + _CH)
        nt = t1 - t0
        _task_blocks(bases, sidx, t0, nt, nbf, n, nb, bs)
        # first the block maxima, then the scales of the task's blocks (a select-only loop
        # across blocks on float32 bits, which vectorizes eight lanes wide) ...
        for k in range(nt):
            am[k] = _amax_bits(xb, _block_base(bases, t0, k, bs, whole), bs)
        nslow = 0
        for k in range(nt):
            code, d = nv_scale32(am[k], rdiv, tscale, splan32, _NEAR)
            sc_loc[k] = code
            ds[k] = d
            nslow += d < 0
        if nslow:  # the exact float64 step for the blocks flagged above
            for k in range(nt):
                if ds[k] >= 0:
                    continue
                a = am[k]
                if a >= 0x7F800000:
                    sc_loc[k] = snan
                    continue
                af64 = np.float64(bits_f32(a))
                sv, code = rne_scale_f64(af64 / div, splan)
                d = np.float32(sv * t64)
                sc_loc[k] = code
                if (d >= np.float32(1.1754944e-38)) & (af64 <= d * 2.0**125):
                    ds[k] = d
        _store_scales(scodes, sc_loc, sidx, t0, nt, whole)
        # ... then the elements (asking for the next task's blocks meanwhile; the blocks
        # flagged slow are overwritten below)
        for k in range(nt):
            base = _block_base(bases, t0, k, bs, whole)
            _prefetch_block(xb, base, bs)
            if bs == 16:  # literal trip counts: the compiler unrolls and vectorizes
                _nv_elems(x, out, base, 16, ds[k], plan)
            elif bs == 32:
                _nv_elems(x, out, base, 32, ds[k], plan)
            else:
                _nv_elems(x, out, base, bs, ds[k], plan)
        if nslow == 0:
            continue
        for k in range(nt):
            if ds[k] >= 0:
                continue
            base = _block_base(bases, t0, k, bs, whole)
            a = _amax_bits(xb, base, bs)
            if a >= 0x7F800000:  # inf or NaN in the block
                for j in range(bs):
                    out[base + np.uint64(j)] = np.float32(math.nan)
                continue
            sv, code = rne_scale_f64(np.float64(bits_f32(a)) / div, splan)
            d = np.float32(sv * t64)
            if d == 0:  # every element rounds to +0 (the general loop's result)
                for j in range(bs):
                    out[base + np.uint64(j)] = np.float32(0.0)
                continue
            todo += 1  # d subnormal, or quotients that could overflow float32
    return todo


def nv_f32_rne(x, xb, out, nblk, n, nb, bs, emaxv, tscale, splan, splan32, snan, plan, scodes):
    """NVFP4 values of float32 input, nearest-even, float32 output: the ``nblk`` whole blocks
    of rows of ``n`` elements, scale codes into rows of ``nb`` scales (as :func:`mx_f32_rne`).

    Same results as :func:`nv_kernel` with ``vec == 1`` (tested). The block scale is
    ``rne(amax / (emax * tscale))`` into the scale format, rounded from the float32 quotient
    ``q = amax * float32(1 / (emax * tscale))`` on its bits, eight lanes at a time: ``q`` is
    within 3 float32 ulps of the exact quotient, and a quotient that is not exactly a midpoint
    of the scale format lies much farther from one (``amax`` has 24 significant bits, the
    divisor 27, a midpoint ``sm + 2``: a non-zero difference is at least ``2**-32`` relative),
    so ``q`` rounds as the exact quotient does unless it lies within ``_NEAR`` ulps of a
    midpoint or below the smallest normal scale; those blocks (and zero blocks) take the exact
    float64 step :func:`rne_scale_f64`. The elements take the select-only loop on
    ``float32(x / d)``. Returns the number of blocks whose ``d`` is subnormal or whose
    quotients could overflow float32 (extreme tensor scales): when not 0, the caller runs the
    general kernel :func:`nv_kernel` instead (this kernel then needs no general core, and
    compiles in a fraction of the time).
    """
    args = (x, xb, out, nblk, n, nb, bs, emaxv, tscale, splan, splan32, snan, plan, scodes)
    return run(nblk * bs, "block", _nv_f32_span, -(-nblk // _CH), 1, *args)


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


@njit(**_JIT)
def _max_finite_span(c0, c1, xb, chunk, part):
    """Chunks ``c0:c1`` of :func:`max_finite_f32`: ``part[c]`` the largest finite magnitude
    bits of chunk ``c``."""
    for c in range(c0, c1):
        lo = c * chunk
        hi = min(lo + chunk, xb.size)
        a = np.uint32(0)
        for j in range(hi - lo):  # unsigned indices: no negative-index wraparound, vectorizes
            a = max(a, xb[np.uint64(lo) + np.uint64(j)] & np.uint32(0x7FFFFFFF))
        if a >= 0x7F800000:
            a = 0
            for i in range(lo, hi):
                v = xb[i] & np.uint32(0x7FFFFFFF)
                if v < 0x7F800000 and v > a:
                    a = v
        part[c] = a
    return 0


def max_finite_f32(xb, chunk):
    """Largest finite magnitude of float32 bits ``xb`` (uint32), as float64; 0.0 when none.

    Magnitude bit patterns are ordered as the magnitudes are, so this is an integer max: a
    plain (vectorized) max per chunk, redone with inf and NaN left out where the chunk has any.
    """
    part = np.zeros(max(-(-xb.size // chunk), 1), dtype=np.int64)
    run(xb.size, "block", _max_finite_span, -(-xb.size // chunk), 1, xb, chunk, part)
    return float(np.uint32(part.max()).view(np.float32))
