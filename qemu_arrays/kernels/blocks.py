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

from qemu_arrays.formats import rne32 as _rne32
from qemu_arrays.formats import round32 as _round32
from qemu_arrays.formats.bits import bits_f32, bits_f64, f64_bits
from qemu_arrays.formats.block_cores import (  # scale rules: qemu_arrays.formats.block_spec.ScaleRule
    CEIL,
    CEIL_POW2,
    EVEN,
    FLOOR,
    NO_RULE,
    RCEIL,
    RFLOOR,
    RHALF_UP,
    mx_element,
    mx_rne32,
    mx_scale,
    mx_subnormal_quantum,
    nv_element,
    nv_rne32,
    nv_scale,
    nv_vec_ok,
    pow2_f32,
    sel_element32,
    sel_value32,
    shared_exponent,
    split_bits,
)
from qemu_arrays.formats.cores import RDN, RNE, RTZ, RUP, SR, random_u
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.round32 import code32, sr_bits32, value32
from qemu_arrays.kernels import elements as _cpu
from qemu_arrays.kernels import simd as cpu_simd
from qemu_arrays.kernels.runtime import run
from qemu_arrays.kernels.simd import amax_bits16, amax_bits32, nv_scale32, prefetch

# the kernels call cpu.py njit functions and inline the cpu_simd, rne32 and round32 intrinsics
purge_stale_cache(__file__, _cpu.__file__, cpu_simd.__file__, _rne32.__file__, _round32.__file__)

_PAR = {"parallel": True, "cache": True, "nogil": True}
_JIT = {"cache": True, "nogil": True}
_GCH = 64  # blocks per parallel task of the general kernels
# no ZeroDivisionError check on float division (it stops the loop from vectorizing)
_JIT_NP = {**_JIT, "error_model": "numpy"}


@njit(cache=True, nogil=True, inline="always")
def _random_u(ra, idxmap, i):
    """The random word of element ``i`` (its C-order index through ``idxmap`` when the blocks
    run along another axis) under stochastic rounding, else 0."""
    rnd, k0, k1, k2, offset, r = ra
    if rnd != SR:
        return 0
    idx = idxmap[i] if idxmap.size > 1 else i
    return random_u(k0, k1, k2, offset + idx, r)


@njit(cache=True, nogil=True, inline="always")
def _nan_block(out, codes, start, stop, want):
    """A block holding inf/NaN (or whose scale exceeds the scale format): NaN values, code 0."""
    for i in range(start, stop):
        if want & 1:
            out[i] = math.nan
        if want & 2:
            codes[i] = 0


@njit(cache=True, nogil=True, inline="always")
def _mx_block(xb, start, stop, e, sp, ep, ie, ra, idxmap, want, fast, outb, codes):
    """Elements ``start:stop`` of one MX block under the scale ``2**e``: the shared step
    :func:`~qemu_arrays.formats.block_cores.mx_element`, values as IEEE bits into ``outb``."""
    rnd, _k0, _k1, _k2, _offset, r = ra
    subq = mx_subnormal_quantum(e, ep)
    for i in range(start, stop):
        u = _random_u(ra, idxmap, i)
        vb, c = mx_element(np.int64(xb[i]), e, subq, sp, ep, ie, rnd, u, r, fast, want)
        if want & 1:
            outb[i] = vb
        if want & 2:
            codes[i] = c


@njit(**_JIT)
def _mx_span(
    t0, t1, xb, R, n, bs, ep, sp, ie, ra, idxmap, want, fast, out, outb, codes, scodes, vec, plan
):
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`mx_kernel`."""
    in_e, in_m = sp[0], sp[1]
    nb = (n + bs - 1) // bs
    absmask = (np.int64(1) << (in_e + in_m)) - 1
    fast_ok = 1 if (fast == 1 and ie[0] == 0 and ep[0] <= in_m) else 0
    for t in range(t0, t1):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        amaxb = np.int64(0)
        for i in range(start, stop):
            a = np.int64(xb[i]) & absmask  # |x| bits: ordered as the magnitudes are
            amaxb = max(amaxb, a)
        special, e, sc = mx_scale(amaxb, sp)
        scodes[t] = sc
        if special == 1:
            _nan_block(out, codes, start, stop, want)
        elif vec == 1:
            _mx_elems(xb, out, np.uint64(start), stop - start, pow2_f32(-e), pow2_f32(e), plan)
        else:
            _mx_block(xb, start, stop, e, sp, ep, ie, ra, idxmap, want, fast_ok, outb, codes)
    return 0


def mx_kernel(
    xb, R, n, bs, ep, sp, ie, ra, idxmap, want, fast, out, outb, codes, scodes, vec, plan
):
    """MX quantization with a power-of-two (E8M0-style) scale: per block the shared scale step
    :func:`~qemu_arrays.formats.block_cores.mx_scale` (``sp`` an ``MxScalePlan``: the input's
    layout and the scale constants), then each element by the shared element step
    :func:`~qemu_arrays.formats.block_cores.mx_element` (``ep`` the element's ``FormatParams``,
    ``ie`` an ``IntElement``, ``ra`` a ``RoundingArgs``).

    ``vec == 1`` (float32 input and output, float elements, nearest-even, values only): each
    block's elements take the select-only step
    :func:`~qemu_arrays.formats.block_cores.mx_rne32` (``plan`` from ``rne_f32_plan`` under
    saturation) on ``x * 2**-e``, multiplied back by ``2**e``.

    ``want`` bit 1: write values to ``out`` (``outb`` is the same buffer viewed as IEEE bits);
    bit 2: write element codes to ``codes``; scale codes always go to ``scodes`` (one per
    block, row-major over (row, block)). ``fast == 0`` turns the fast path on the bits off
    (tests compare).
    """
    args = (xb, R, n, bs, ep, sp, ie, ra, idxmap, want, fast, out, outb, codes, scodes, vec, plan)
    run(xb.size, "block", _mx_span, R * -(-n // bs), _GCH, *args)


@njit(**_JIT)
def _nv_span(
    t0, t1, xb, R, n, bs, ep, sp_, tscale, ra, idxmap, want, fast, out, codes, scodes, vec, plan
):
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`nv_kernel`."""
    m, emax, sigmax = ep[0], ep[2], ep[3]
    nb = (n + bs - 1) // bs
    emaxv = math.ldexp(float(sigmax), emax - m)  # element max
    t64 = np.float64(tscale)
    fast_ok = 1 if (fast == 1 and m <= 23) else 0
    for t in range(t0, t1):
        row = t // nb
        blk = t - row * nb
        start = row * n + blk * bs
        stop = min(start + bs, row * n + n)
        amaxb = np.int64(0)
        for i in range(start, stop):
            amaxb = max(amaxb, np.int64(xb[i]) & 0x7FFFFFFF)
        special, sc, d = nv_scale(amaxb, emaxv, t64, sp_)
        scodes[t] = sc
        if special == 1:
            _nan_block(out, codes, start, stop, want)
        elif vec == 1 and nv_vec_ok(amaxb, d):
            _nv_elems(xb, out, np.uint64(start), stop - start, d, plan)
        else:
            _nv_block(xb, start, stop, d, ep, ra, idxmap, want, fast_ok, out, codes)
    return 0


def nv_kernel(xb, R, n, bs, ep, sp_, tscale, ra, idxmap, want, fast, out, codes, scodes, vec, plan):
    """Two-level (NVFP4-style) quantization of float32 input, ``xb`` its uint32 bits.

    Per block the shared scale step :func:`~qemu_arrays.formats.block_cores.nv_scale`: ``s_b =
    round_scale(amax_b / (6 * tscale))`` computed in float64 (exact single rounding, see
    docs/blocks.md), ``d = float32(s_b * tscale)``; each element by the shared step
    :func:`~qemu_arrays.formats.block_cores.nv_element`, ``round_elem(float32(x / d))`` with the
    float32 quotient correctly rounded (``ra`` a ``RoundingArgs``).

    ``vec == 1`` (float32 output, nearest-even, values only): blocks where
    :func:`~qemu_arrays.formats.block_cores.nv_vec_ok` take the select-only step
    :func:`~qemu_arrays.formats.block_cores.nv_rne32` (``plan`` under saturation).
    """
    args = (xb, R, n, bs, ep, sp_, tscale, ra, idxmap, want, fast, out, codes, scodes, vec, plan)
    run(xb.size, "block", _nv_span, R * -(-n // bs), _GCH, *args)


@njit(**_JIT)
def _nv_block(xb, start, stop, d, ep, ra, idxmap, want, fast, out, codes):
    """Elements ``start:stop`` of one NVFP4 block with the float32 divisor ``d``: the shared
    step :func:`~qemu_arrays.formats.block_cores.nv_element` (the general loop of
    :func:`nv_kernel`)."""
    rnd, _k0, _k1, _k2, _offset, r = ra
    f64 = 0 if out.itemsize == 4 else 1
    for i in range(start, stop):
        u = _random_u(ra, idxmap, i)
        vb, c = nv_element(np.int64(xb[i]), d, ep, rnd, u, r, fast, want, f64)
        if want & 1:
            if f64 == 1:
                out[i] = bits_f64(vb)
            else:
                out[i] = bits_f32(vb)
        if want & 2:
            codes[i] = c


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
    """:func:`~qemu_arrays.formats.block_cores.shared_exponent` of a block whose largest
    magnitude has the float32 bits ``a`` (finite, non-zero): the select-only form
    :func:`_block_exponent_select` that :func:`mx_f32_rne` runs for a normal maximum (tested
    equal to the shared rule), the shared rule itself for a subnormal one."""
    if a >> 23 == 0:
        return _exp_subnormal_amax(a, rule, mprec, emax_elem, maxsig)
    return _block_exponent_select(a, rule, sh, mref, emax_elem)


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
    """``out = rne(x * inv) * sc2`` over ``nj`` elements from ``base``: the shared select-only
    step :func:`~qemu_arrays.formats.block_cores.mx_rne32`."""
    for j in range(nj):
        i = base + np.uint64(j)
        out[i] = mx_rne32(xb[i], inv, sc2, plan)


@njit(cache=True, nogil=True, inline="always")
def _nv_elems(xb, out, base, nj, d, plan):
    """``out = rne(x / d) * d`` over ``nj`` elements from ``base``: the shared select-only step
    :func:`~qemu_arrays.formats.block_cores.nv_rne32`."""
    for j in range(nj):
        i = base + np.uint64(j)
        out[i] = nv_rne32(xb[i], d, plan)


@njit(cache=True, nogil=True, inline="always")
def _block_exponent_select(a, rule, sh, mref, emax_elem):
    """The scale exponent of a block whose largest magnitude has the normal float32 bits ``a``,
    in selects only (no call, no branch): rounding the significand to ``mprec`` fraction bits
    (``sh = 23 - mprec`` bits dropped) carries into the exponent field exactly when the rounded
    value reaches the next binade; the rules on ``amax / max`` compare the fraction field (or
    the significand ``s``, times 4 and 2 against 3 times the maximum's) with ``mref``, the
    fraction of the element maximum's significand. A wrong value for a subnormal maximum, which
    the caller fixes up; a rule code that is no ``ScaleRule`` gives ``NO_RULE`` (a NaN scale),
    as :func:`~qemu_arrays.formats.block_cores.shared_exponent` does."""
    ef = a >> 23
    frac = a & 0x7FFFFF
    ceil = (a + ((1 << sh) - 1)) >> 23
    even = (a + ((1 << (sh - 1)) - 1) + ((a >> sh) & 1)) >> 23
    s, sm3 = frac | 0x800000, 3 * (mref | 0x800000)
    half_up = ef - 1 + (4 * s >= sm3) + (2 * s >= sm3)
    r = (ef if rule == FLOOR else ceil if rule == CEIL else even if rule == EVEN
         else ef + (frac > mref) if rule == RCEIL else ef + (frac != 0) if rule == CEIL_POW2
         else ef - (frac < mref) if rule == RFLOOR else half_up if rule == RHALF_UP
         else NO_RULE + 127 + emax_elem)  # fmt: skip
    return r - 127 - emax_elem


@njit(cache=True, nogil=True, inline="always")
def _pow2_bits_sel(k):
    """Bits of :func:`~qemu_arrays.formats.block_cores.pow2_f32` in selects only (shift counts
    kept in range)."""
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


def _make_mx_f32_span(MODE, WANT):  # noqa: N803  (constants of the compiled span)
    """The span :func:`mx_f32_rne` runs for rounding code ``MODE`` and ``WANT`` (1 values, 2
    codes): each pair compiles on its first use only, with the other modes' loops left out."""

    @njit(**_JIT)
    def _mx_f32_span(c0, c1, xb, out, nblk, n, nb, bs, sp, sh, mref, plan, scodes, ea, codes):
        """Tasks ``c0:c1`` (of ``_CH`` blocks each) of :func:`mx_f32_rne`; returns the number of
        blocks (or elements) left to the general kernel."""
        _in_e, _in_m, rule, _mprec, emax_elem, _maxsig, s_emin, s_emax, s_bias, s_nan = sp
        mode, want = MODE, WANT  # constants: each (mode, want) compiles on its first use
        nbf = n // bs
        whole = nbf == nb
        todo = 0
        bases = np.empty(_CH, dtype=np.uint64)
        sidx = np.empty(_CH, dtype=np.int64)
        am = np.empty(_CH, dtype=np.int64)
        invs = np.empty(_CH, dtype=np.float32)
        muls = np.empty(_CH, dtype=np.float32)
        lims = np.empty(_CH, dtype=np.uint32)
        sc_loc = np.empty(_CH, dtype=np.uint8)
        ex = _task_scales(bs, mode, want)
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
                lims[k] = (_pow2_bits_sel(e - 126) - 1) if (e >= -23) & ~nan_block else 0
            todo += nsub
            _store_scales(scodes, sc_loc, sidx, t0, nt, whole)
            # ... then the elements (asking for the next task's blocks meanwhile), and last the
            # blocks with NaN or inf
            if mode != SR and (mode != RNE or want == 2):  # block by block, no spread
                todo += _blocks_no_sr(
                    xb, out, codes, bases, t0, nt, bs, whole, invs, muls, lims, 0, plan, ea,
                    mode, want,
                )  # fmt: skip
            elif mode != RNE or want != 1:  # other modes, codes: the task's elements in one loop
                todo += _sel_task(
                    xb,
                    out,
                    codes,
                    bases,
                    t0,
                    nt,
                    bs,
                    whole,
                    invs,
                    muls,
                    lims,
                    ex,
                    0,
                    plan,
                    ea,
                    mode,
                    want,
                )
            else:
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
                        _nan_fill(out, codes, _block_base(bases, t0, k, bs, whole), bs, want)
        return todo

    return _mx_f32_span


_PAIRS = [(m, w) for m in (RNE, RTZ, RUP, RDN, SR) for w in (1, 2)]
_MX_SPANS = {pair: _make_mx_f32_span(*pair) for pair in _PAIRS}


def mx_f32_rne(xb, out, nblk, n, nb, bs, sp, sh, mref, plan, scodes, ea=None, codes=None):
    """MX values of float32 input, nearest-even: the ``nblk`` whole blocks of rows of ``n``
    elements (``n // bs`` of them per row; a short last block of each row is left to the
    caller), scale codes into rows of ``nb`` scales.

    Same results as :func:`mx_kernel` with ``vec == 1`` (tested): the block maximum is a vector
    reduction (:func:`qemu_arrays.kernels.simd.amax_bits32`), the scale exponent comes from its
    bits in selects only (:func:`_block_exponent_select`, the rule of
    :func:`~qemu_arrays.formats.block_cores.shared_exponent` on a normal maximum; ``sp`` an
    ``MxScalePlan``, ``sh`` and ``mref`` from :func:`block_exponent_consts`), and the elements
    take the shared select-only step :func:`~qemu_arrays.formats.block_cores.mx_rne32`. Returns the number of blocks whose maximum is subnormal: when not 0, the caller
    runs the general kernel :func:`mx_kernel` instead (this kernel then needs no general core,
    and compiles in a fraction of the time).

    ``ea`` (:func:`sel_args`) extends it to the other modes and to codes: the elements then
    take :func:`_sel_task` (the directed and stochastic rounding of
    :func:`~qemu_arrays.formats.round32.round32` on ``x * 2**-e``, the random bits of each
    element's flat index generated in the loop; codes from the rounded value), and an element
    whose scaled value ``x * 2**-e`` is not exact in float32 (far below its block's maximum)
    is counted too, for the general kernel.
    """
    ea = _RNE_VALUES if ea is None else ea
    codes = _NO_CODES if codes is None else codes
    args = (xb, out, nblk, n, nb, bs, sp, sh, mref, plan, scodes, ea, codes)
    span = _MX_SPANS[ea[0], ea[6]]
    return run(nblk * bs, "block", span, -(-nblk // _CH), 1, *args)


# ---- other rounding modes and codes in the fast kernels ----------------------------------------

_NO_CODES = np.zeros(1, dtype=np.uint8)
_NV_LIMS = np.zeros(_CH, dtype=np.uint32)  # NVFP4 has no inexact-product check
#: a round32 plan where none applies (nearest-even)
_NO_RPLAN = (0,) * 10 + (1.0, 1.0)
_NO_CPLAN = (0, 0, 0, 1.0, 0, 0, 0, 0)


def sel_args(mode, rplan, keys, offset, r, want, cplan):
    """The ``ea`` tuple of the fast kernels, flat (scalars only cross into the parallel driver's
    ``prange``): ``(mode, k0, k1, k2, offset, r, want, *round32 plan, *code plan)``; ``rplan``
    (``elements.round_f32_plan``, 12 entries) for the modes other than nearest-even, ``cplan``
    (``elements.code_plan``, 8 entries) for codes (``want == 2``)."""
    k0, k1, k2 = keys
    rplan = _NO_RPLAN if rplan is None else tuple(rplan)
    cplan = _NO_CPLAN if cplan is None else tuple(cplan)
    return (int(mode), int(k0), int(k1), int(k2), int(offset), int(r), int(want), *rplan, *cplan)


_RNE_VALUES = sel_args(RNE, None, (0, 0, 0), 0, 32, 1, None)


@njit(cache=True, nogil=True, inline="always")
def _sel_loop(xb, out, codes, base, nj, ex, s0, nv, plan, ea, mode, want):
    """Elements ``base:base + nj`` under the rounding code ``mode``; ``want`` 1 values, 2
    codes; ``nv`` 0 MX, 1 NVFP4 (literals where called: LLVM drops the other modes' selects).
    Element ``base + j`` takes the scale of entry ``s0 + j`` of the arrays ``ex`` (``(2**-e,
    mul, lim)``, :func:`_sel_task`): MX, the element
    ``round(x * inv)``, NVFP4 ``round(float32(x / d))``, its value the element times ``mul``
    (``d``). Returns 1 when an MX element has ``0 < |x| < 2**(e - 126)`` (``x * 2**-e`` then
    not a normal float32: bits its rounding reads may be lost) under a directed or stochastic
    mode; nearest-even rounds the product and the exact quotient alike (to zero), as
    :func:`~qemu_arrays.formats.block_cores.mx_rne32` does for values."""
    k0, k1, k2, offset, r = ea[1], ea[2], ea[3], ea[4], ea[5]
    rplan, cplan = ea[7:19], ea[19:27]
    rbase = offset + np.int64(base)
    sinv, smul, slim = ex
    bad = np.uint32(0)
    for j in range(nj):  # unsigned indices: no negative-index wraparound code
        i = base + np.uint64(j)
        s = np.uint64(s0) + np.uint64(j)
        b = xb[i]
        mul = smul[s]
        inv = np.float32(0.0)
        if nv == 0:
            inv = sinv[s]
            if mode != RNE:  # 0 < |x| < 2**(e - 126), on 32-bit words (no i1 vector logic)
                bad |= np.uint32((b & np.uint32(0x7FFFFFFF)) - np.uint32(1) < slim[s])
        w = sr_bits32(rbase, j, k0, k1, k2, 32) if mode == SR else np.uint32(0)  # the word
        p = sel_element32(b, inv, mul, nv, mode, plan, rplan, w, r)
        if want == 1:
            out[i] = sel_value32(p, mul)
        else:
            codes[i] = code32(b, p, cplan)  # the element kernels' code step
    return bad


@njit(cache=True, nogil=True, inline="always")
def _sel_block(xb, out, codes, base, nj, inv, mul, lim, nv, plan, ea, mode, want):
    """:func:`_sel_loop` over one block (elements ``base:base + nj``) whose scale ``(inv, mul,
    lim)`` is a scalar, for the modes without random bits (nearest-even codes, the directed
    modes): the same steps, with no per-element spread of the block's scale."""
    r, rplan, cplan = ea[5], ea[7:19], ea[19:27]
    bad = np.uint32(0)
    for j in range(nj):  # unsigned indices: no negative-index wraparound code
        i = base + np.uint64(j)
        b = xb[i]
        if nv == 0 and mode != RNE:  # 0 < |x| < 2**(e - 126), as in _sel_loop
            bad |= np.uint32((b & np.uint32(0x7FFFFFFF)) - np.uint32(1) < lim)
        p = sel_element32(b, inv, mul, nv, mode, plan, rplan, np.uint32(0), r)
        if want == 1:
            out[i] = sel_value32(p, mul)
        else:
            codes[i] = code32(b, p, cplan)
    return bad


@njit(cache=True, nogil=True, inline="always")
def _blocks_no_sr(xb, out, codes, bases, t0, nt, bs, whole, invs, muls, lims, nv, plan, ea,
                  mode, want):  # fmt: skip
    """The elements of one task's ``nt`` blocks by :func:`_sel_block` (a literal trip count
    for blocks of 16 and 32: the compiler unrolls and vectorizes); the next task's blocks are
    prefetched meanwhile. Returns 1 where an MX element is flagged as in :func:`_sel_loop`."""
    bad = np.uint32(0)
    for k in range(nt):
        base = _block_base(bases, t0, k, bs, whole)
        _prefetch_block(xb, base, bs)
        inv, mul, lim = invs[k], muls[k], lims[k]
        if bs == 32:
            bad |= _sel_block(xb, out, codes, base, 32, inv, mul, lim, nv, plan, ea, mode, want)
        elif bs == 16:
            bad |= _sel_block(xb, out, codes, base, 16, inv, mul, lim, nv, plan, ea, mode, want)
        else:
            bad |= _sel_block(xb, out, codes, base, bs, inv, mul, lim, nv, plan, ea, mode, want)
    return bad


@njit(cache=True, nogil=True, inline="always")
def _task_scales(bs, mode, want):
    """The per-element scale arrays of :func:`_sel_task` (empty for nearest-even values)."""
    m = _CH * bs if (mode != RNE or want != 1) else 1
    return np.empty(m, dtype=np.float32), np.empty(m, dtype=np.float32), np.empty(m, np.uint32)


@njit(cache=True, nogil=True, inline="always")
def _sel_task(
    xb, out, codes, bases, t0, nt, bs, whole, invs, muls, lims, ex, nv, plan, ea, mode, want
):
    """The elements of one task's ``nt`` blocks outside nearest-even values: each block's
    ``(2**-e, mul, lim)`` (``lims`` the float32 bits of ``2**(e - 126)`` less one, 0 where that
    lies below float32's range or the block is NaN) spread over its elements in ``ex``, then
    one :func:`_sel_loop` over the task's elements when they are contiguous (rows of whole
    blocks), else one per block; the next task's blocks are prefetched first."""
    sinv, smul, slim = ex
    for k in range(nt):
        _prefetch_block(xb, _block_base(bases, t0, k, bs, whole), bs)
        for j in range(bs):
            s = np.uint64(k) * np.uint64(bs) + np.uint64(j)
            sinv[s] = invs[k]
            smul[s] = muls[k]
            slim[s] = lims[k]
    if whole:
        base = np.uint64(t0) * np.uint64(bs)
        return _sel_loop(xb, out, codes, base, nt * bs, ex, 0, nv, plan, ea, mode, want)
    bad = np.uint32(0)
    for k in range(nt):
        bad |= _sel_loop(xb, out, codes, bases[k], bs, ex, k * bs, nv, plan, ea, mode, want)
    return bad


@njit(cache=True, nogil=True, inline="always")
def _nan_fill(out, codes, base, bs, want):
    """A NaN block of the fast kernels: NaN values, or codes 0."""
    for j in range(bs):
        if want == 1:
            out[base + np.uint64(j)] = np.float32(math.nan)
        else:
            codes[base + np.uint64(j)] = 0


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


def _make_nv_f32_span(MODE, WANT):  # noqa: N803  (constants of the compiled span)
    """The span :func:`nv_f32_rne` runs for rounding code ``MODE`` and ``WANT`` (as
    :func:`_make_mx_f32_span`)."""

    @njit(**_JIT_NP)
    def _nv_f32_span(
        c0,
        c1,
        xb,
        out,
        nblk,
        n,
        nb,
        bs,
        emaxv,
        tscale,
        splan,
        splan32,
        snan,
        plan,
        scodes,
        ea,
        codes,
    ):
        """Tasks ``c0:c1`` (of ``_CH`` blocks each) of :func:`nv_f32_rne`; returns the number of
        blocks left to the general kernel."""
        mode, want = MODE, WANT  # constants: each (mode, want) compiles on its first use
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
        ex = _task_scales(bs, mode, want)
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
            if mode != SR and (mode != RNE or want == 2):  # block by block, no spread
                _blocks_no_sr(
                    xb, out, codes, bases, t0, nt, bs, whole, ds, ds, _NV_LIMS, 1, plan, ea,
                    mode, want,
                )  # fmt: skip
            elif mode != RNE or want != 1:  # other modes, codes: the task's elements in one loop
                _sel_task(
                    xb,
                    out,
                    codes,
                    bases,
                    t0,
                    nt,
                    bs,
                    whole,
                    ds,
                    ds,
                    _NV_LIMS,
                    ex,
                    1,
                    plan,
                    ea,
                    mode,
                    want,
                )
            else:
                for k in range(nt):
                    base = _block_base(bases, t0, k, bs, whole)
                    _prefetch_block(xb, base, bs)
                    if bs == 16:  # literal trip counts: the compiler unrolls and vectorizes
                        _nv_elems(xb, out, base, 16, ds[k], plan)
                    elif bs == 32:
                        _nv_elems(xb, out, base, 32, ds[k], plan)
                    else:
                        _nv_elems(xb, out, base, bs, ds[k], plan)
            if nslow == 0:
                continue
            for k in range(nt):
                if ds[k] >= 0:
                    continue
                base = _block_base(bases, t0, k, bs, whole)
                a = _amax_bits(xb, base, bs)
                if a >= 0x7F800000:  # inf or NaN in the block
                    _nan_fill(out, codes, base, bs, want)
                    continue
                sv, code = rne_scale_f64(np.float64(bits_f32(a)) / div, splan)
                d = np.float32(sv * t64)
                if d == 0:  # every element rounds to zero, keeping its sign (E2M1 has -0)
                    for j in range(bs):
                        i = base + np.uint64(j)
                        if want == 1:
                            out[i] = bits_f32(np.int64(xb[i]) & 0x80000000)
                        else:
                            codes[i] = (xb[i] >> np.uint32(31)) << np.uint32(ea[26])
                    continue
                todo += 1  # d subnormal, or quotients that could overflow float32
        return todo

    return _nv_f32_span


_NV_SPANS = {pair: _make_nv_f32_span(*pair) for pair in _PAIRS}


def nv_f32_rne(
    xb, out, nblk, n, nb, bs, emaxv, tscale, splan, splan32, snan, plan, scodes, ea=None,
    codes=None,
):  # fmt: skip
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
    ``float32(x / d)`` (the shared step :func:`~qemu_arrays.formats.block_cores.nv_rne32`). Returns the number of blocks whose ``d`` is subnormal or whose
    quotients could overflow float32 (extreme tensor scales): when not 0, the caller runs the
    general kernel :func:`nv_kernel` instead (this kernel then needs no general core, and
    compiles in a fraction of the time). ``ea`` and ``codes`` as for :func:`mx_f32_rne`: the
    other modes and codes on the same float32 quotient.
    """
    ea = _RNE_VALUES if ea is None else ea
    codes = _NO_CODES if codes is None else codes
    args = (xb, out, nblk, n, nb, bs, emaxv, tscale, splan, splan32, snan, plan, scodes, ea, codes)
    span = _NV_SPANS[ea[0], ea[6]]
    return run(nblk * bs, "block", span, -(-nblk // _CH), 1, *args)


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


# ---- decode: element value times block scale, from two small tables ----------------------------


@njit(cache=True, nogil=True, inline="always")
def _decode_block(codes, out, base, nj, etab, d):
    for j in range(nj):  # unsigned indices: no negative-index wraparound code
        i = base + np.uint64(j)
        out[i] = etab[codes[i]] * d


@njit(**_JIT)
def _decode_span(t0, t1, codes, scodes, n, nb, bs, etab, dtab, out):
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`decode_blocks`."""
    for t in range(t0, t1):
        row = t // nb
        blk = t - row * nb
        start = np.uint64(row * n + blk * bs)
        nj = min(bs, n - blk * bs)
        d = dtab[scodes[t]]
        if nj == 32:  # literal trip counts: the compiler unrolls and vectorizes
            _decode_block(codes, out, start, 32, etab, d)
        elif nj == 16:
            _decode_block(codes, out, start, 16, etab, d)
        else:
            _decode_block(codes, out, start, nj, etab, d)
    return 0


def decode_blocks(codes, scodes, R, n, bs, etab, dtab, out):
    """``out[i] = etab[codes[i]] * dtab[scale code of i's block]`` over rows of ``n`` element
    codes (uint8, C order) with blocks of ``bs`` along each row (the last one may be short) and
    ``ceil(n / bs)`` scale codes per row: ``etab`` every element code's value and ``dtab`` every
    scale code's factor, both in ``out``'s dtype. One product in ``out``'s dtype, rounded once:
    the value of ``docs/blocks.md`` when both tables hold their values exactly (the caller's
    to check)."""
    nb = -(-n // bs)
    run(codes.size, "block", _decode_span, R * nb, _GCH, codes, scodes, n, nb, bs, etab, dtab, out)


@njit(cache=True, nogil=True, inline="always")
def _decode_block32(codes, out, base, nj, dplan, d, seen):
    for j in range(nj):  # unsigned indices; 32-bit words: 16 lanes per AVX-512 vector
        i = base + np.uint64(j)
        v, seen = value32(codes[i], seen, dplan)
        out[i] = out.dtype.type(bits_f32(v)) * d
    return seen


@njit(**_JIT)
def _decode32_span(t0, t1, codes, scodes, n, nb, bs, dplan, dtab, out):
    """Blocks ``t0:t1`` (row-major over (row, block)) of :func:`decode_blocks32`."""
    seen = np.uint32(0)
    row = t0 // nb
    blk = t0 - row * nb
    for t in range(t0, t1):  # (row, blk) stepped, no division per block
        start = np.uint64(row * n + blk * bs)
        nj = min(bs, n - blk * bs)
        d = dtab[scodes[t]]
        blk += 1
        if blk == nb:
            blk = 0
            row += 1
        if nj == 32:  # literal trip counts: the compiler unrolls and vectorizes
            seen = _decode_block32(codes, out, start, 32, dplan, d, seen)
        elif nj == 16:
            seen = _decode_block32(codes, out, start, 16, dplan, d, seen)
        else:
            seen = _decode_block32(codes, out, start, nj, dplan, d, seen)
    return int(seen > (1 << (dplan[0] + 1)) - 1)


def decode_blocks32(codes, scodes, R, n, bs, dplan, dtab, out) -> int:
    """:func:`decode_blocks` with the element value by arithmetic (``formats.round32.value32``
    on ``dplan``, ``kernels.elements.decode_plan`` of the element format) instead of a table
    load: float32 bits, exact in ``out``'s dtype, times the block's factor. Returns 1 where an
    element code lies outside the element format (its value is garbage: the caller raises)."""
    nb = -(-n // bs)
    args = (codes, scodes, n, nb, bs, dplan, dtab, out)
    return run(codes.size, "block", _decode32_span, R * nb, _GCH, *args)
