"""The ``sel32`` path of the emulated matmul (``docs/matmul.md``): per-addition rounding into a
narrow accumulator on float32 words, where every product is exact in float32 and rounding to
odd at 24 bits keeps the format's rounding (:mod:`qemu_arrays.formats.add32`).

The loops are those of :mod:`qemu_arrays.kernels.matmul` (``ROWS`` output rows, strips of
``JC`` columns, ``k`` outside ``j``, two buffers per row) on float32 values: each lane is
:func:`~qemu_arrays.formats.add32.add_round32` (or, for a product rounded first,
:func:`~qemu_arrays.formats.add32.round_sel32` of its exact bits), with the stochastic
rounding's random integer generated in the loop, so the ``j`` loop
vectorizes. A lane the loop cannot decide is written as :data:`MARK32` and finished after the
loop by the general cores (:func:`~qemu_arrays.formats.accumulate.add_round`,
:func:`~qemu_arrays.formats.accumulate.round_value`) from its float64 operands. Event ``t`` of
output element ``e`` draws ``random_u(key, (e << 32) | t, r)``, as every path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qemu_arrays.formats.accumulate import add_round, as_float64, round_value
from qemu_arrays.formats.add32 import MARK32, add_round32, round_sel32
from qemu_arrays.formats.bits import bits_f32, f32_bits
from qemu_arrays.formats.cores import NAN_ERROR, RDN, RNE, RTZ, RUP, SR, mix32, random_u
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.round32 import sr_event32
from qemu_arrays.kernels.runtime import run

purge_stale_cache(__file__)  # formats/ changes: add32, round32, accumulate are inlined

__all__ = ["sequential_sel32"]

_JIT = {"cache": True, "nogil": True}
_INL = {"cache": True, "nogil": True, "inline": "always"}

FAMILY = "matmul"
ROWS = 4
JC = 512


@njit(**_INL)
def _add_loop(src, dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r):
    """``dst[j] = R(src[j] + xscale * xs[j])`` in selects; whether a lane is undecided."""
    h = mix32(t ^ k2)
    slow = False
    for jj in range(src.size):
        j = np.uint64(jj)  # unsigned indices: no negative-index wraparound code
        u = sr_event32(h, ebase + jj, k0, k1, r) if mode == SR else np.uint32(0)
        ok, v = add_round32(src[j], xscale * xs[j], c, mode, u, r)
        dst[j] = bits_f32(v if ok else MARK32)
        slow |= not ok
    return slow


@njit(**_INL)
def _round_loop(dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r):
    """``dst[j] = R(xscale * xs[j])`` (exact float32 products) in selects; whether a lane is
    undecided."""
    h = mix32(t ^ k2)
    slow = False
    for jj in range(dst.size):
        j = np.uint64(jj)
        u = sr_event32(h, ebase + jj, k0, k1, r) if mode == SR else np.uint32(0)
        ok, res = round_sel32(f32_bits(xscale * xs[j]), c, mode, u, r)
        dst[j] = bits_f32(res if ok else MARK32)
        slow |= not ok
    return slow


@njit(**_JIT)
def _finish(src, dst, xs, xscale, ebase, t, p, rnd, k0, k1, k2, r, add):
    """The general core for the lanes :data:`MARK32` marks; the count of NaN errors."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    err = 0
    for j in range(dst.size):
        if f32_bits(dst[j]) == MARK32:
            u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
            x = np.float64(xscale) * np.float64(xs[j])
            if add:
                st, s_, kept, q = add_round(np.float64(src[j]), x, m, emin, emax, sigmax, sub,
                                            hz, sg, sp, rnd, 0, u, r)  # fmt: skip
            else:
                st, s_, kept, q = round_value(x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, 0,
                                              u, r)  # fmt: skip
            err += st == NAN_ERROR
            dst[j] = np.float32(as_float64(st, s_, kept, q))
    return err


@njit(**_INL)
def _step(src, dst, xs, xscale, ebase, t, p, c, mode, k0, k1, k2, r, add):
    if add:
        n = _add_loop(src, dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r)
    else:
        n = _round_loop(dst, xs, xscale, ebase, t, c, mode, k0, k1, k2, r)
    if n:
        return _finish(src, dst, xs, xscale, ebase, t, p, mode, k0, k1, k2, r, add)
    return 0


@njit(**_INL)
def _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, mode, fma,
           k0, k1, k2, r):  # fmt: skip
    """Rows ``i0 .. i0 + nr``, columns ``j0 .. j1``: ``acc <- R(acc + A[i, k] B[k, j])`` for
    ``k_lo <= k < k_hi`` (events ``k``, or ``2k`` and ``2k + 1`` when the product is rounded
    first), from ``buf[0]``; ``(NaN errors, buffer holding the result)``."""
    w = j1 - j0
    err = 0
    cur = 0
    for k in range(k_lo, k_hi):
        bk = B[k, j0:j1]
        nxt = 1 - cur
        for rr in range(nr):
            i = i0 + rr
            aik = A[i, k]
            ebase = eoff + i * N + j0
            src = buf[cur, rr, :w]
            dst = buf[nxt, rr, :w]
            if fma:
                err += _step(src, dst, bk, aik, ebase, k, p, c, mode, k0, k1, k2, r,
                             True)  # fmt: skip
            else:
                pr = prow[:w]
                err += _step(pr, pr, bk, aik, ebase, 2 * k, p, c, mode, k0, k1, k2, r,
                             False)  # fmt: skip
                err += _step(src, dst, pr, np.float32(1.0), ebase, 2 * k + 1, p, c,
                             mode, k0, k1, k2, r, True)  # fmt: skip
        cur = nxt
    return err, cur


@njit(**_JIT)
def _strip_mode(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, rnd, fma,
                k0, k1, k2, r):  # fmt: skip
    """:func:`_strip` with the rounding mode as a literal (its branches fold)."""
    if rnd == RNE:
        return _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, RNE,
                      fma, k0, k1, k2, r)  # fmt: skip
    if rnd == RTZ:
        return _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, RTZ,
                      fma, k0, k1, k2, r)  # fmt: skip
    if rnd == RUP:
        return _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, RUP,
                      fma, k0, k1, k2, r)  # fmt: skip
    if rnd == RDN:
        return _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, RDN,
                      fma, k0, k1, k2, r)  # fmt: skip
    return _strip(buf, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, SR, fma,
                  k0, k1, k2, r)  # fmt: skip


@njit(**_JIT)
def _sequential_sel32_span(lo, hi, A, B, out, p, c, rnd, fma, k0, k1, k2, r, eoff,
                           bk, promote):  # fmt: skip
    """``sequential`` (or, with ``promote``, ``blocked`` with ``bk`` products per block and
    float32 nearest-even promotions, the CPU's own addition) into the accumulator ``p``, on
    float32 values; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    step = bk if promote else max(K, 1)
    nb = (K + step - 1) // step
    err = 0
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        buf = np.empty((2, ROWS, JC), dtype=np.float32)
        tot = np.empty((ROWS, JC), dtype=np.float32)
        prow = np.empty(JC, dtype=np.float32)
        for j0 in range(0, N, JC):
            j1 = min(N, j0 + JC)
            w = j1 - j0
            tot[:] = 0.0
            cur = 0
            for t in range(nb):
                buf[0] = 0.0
                e, cur = _strip_mode(buf, prow, A, B, i0, nr, j0, j1, t * step,
                                     min(K, (t + 1) * step), N, eoff, p, c, rnd, fma,
                                     k0, k1, k2, r)  # fmt: skip
                err += e
                if promote:
                    for rr in range(nr):
                        tr = tot[rr]
                        pr = buf[cur, rr]
                        for j in range(w):
                            tr[j] = tr[j] + pr[j]
            out[i0 : i0 + nr, j0:j1] = tot[:nr, :w] if promote else buf[cur, :nr, :w]
    return err


def sequential_sel32(A, B, out, p, c, rnd, fma, k0, k1, k2, r, eoff, bk,
                     promote) -> int:  # fmt: skip
    """The ``sel32`` path (:func:`_sequential_sel32_span`) on the calling thread or the pool;
    ``A``, ``B`` and ``out`` float32; the NaN-error count."""
    M, K = A.shape
    args = (A, B, out, p, c, rnd, fma, k0, k1, k2, r, eoff, bk, promote)
    groups = (M + ROWS - 1) // ROWS
    return run(M * B.shape[1] * max(K, 1), FAMILY, _sequential_sel32_span, groups, 1, *args)
