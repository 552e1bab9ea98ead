"""numba CPU kernels of the emulated matrix multiplication (``docs/matmul.md``).

Layout: ``A`` (M x K) and ``B`` (K x N) are float64 arrays of float32 values, so every product
``A[i, k] * B[k, j]`` is exact in float64; the kernels keep the running values of a tile of rows
of the output in float64 rows and loop ``k`` outside ``j`` so that the ``j`` loop runs over
contiguous memory and vectorizes.

One addition ``acc <- R(acc + x)`` takes the first path that applies, lane by lane:

* the fast path: the float64 sum ``s = acc + x``, corrected to the exact sum rounded to odd when
  the sum may be inexact (TwoSum, the caller's ``need_ts``), then
  :func:`~qemu_arrays.formats.cores.round_bits_fast` on its bits (in-range results);
* the general core :func:`~qemu_arrays.formats.accumulate.add_round` for the lanes the fast path
  leaves (zeros, subnormal results, overflow, infinities, NaN, and precisions where round to
  odd at 53 bits is not enough), run after the vector loop from the saved operands.

Both give the bits of ``add_round``. Stochastic rounding draws event ``t`` of output element
``e`` from ``random_u(key, (e << 32) | t, r)``.

Threads: each kernel is a serial span over groups of rows (``_name_span(lo, hi, ...)``), and
the public function of the same name runs it through :func:`qemu_arrays.kernels.runtime.run`:
on the calling thread for small products (:data:`~qemu_arrays.kernels.runtime.SERIAL_BELOW`
``["matmul"]`` multiply-adds) or with one thread configured, else over numba's pool in chunks
(forked workers, the library's thread count and the ``workqueue`` lock behave as for every other
kernel). Results do not depend on the thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from qemu_arrays.formats.accumulate import (
    add_round,
    as_float64,
    fused_round,
    fused_term,
    kulisch_clear,
    kulisch_term,
    kulisch_total_round,
    nominal_exponent,
    split64,
)
from qemu_arrays.formats.bits import bits_f32, bits_f64, f32_bits, f64_bits, fma
from qemu_arrays.formats.cores import NAN_ERROR, RTZ, SR, random_u
from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.formats.rne32 import rne32
from qemu_arrays.kernels.matmul_spans import add as _add
from qemu_arrays.kernels.matmul_spans import rnd_round as _round
from qemu_arrays.kernels.matmul_spans import sel_consts
from qemu_arrays.kernels.runtime import init_threading, run

# formats/ changes (accumulate, cores, bits, rne32 are inlined), and the spans'
purge_stale_cache(__file__, str(Path(__file__).with_name("matmul_spans.py")))
init_threading()  # a fork-safe layer before any parallel kernel runs (kernels/runtime.py)

#: the thread-count family of :func:`qemu_arrays.kernels.runtime.run` (work: multiply-adds)
FAMILY = "matmul"

_JIT = {"cache": True, "nogil": True}

SIGN = np.int64(-9223372036854775807 - 1)  # the sign bit of a float64, 1 << 63
ROWS = 4  # rows of the output per task: each B[k, :] load serves four rows


# ---- sequential and blocked (rounded partial sums) ---------------------------------------------

JC = 512  # columns per chunk: ROWS rows of two buffers of JC float64 stay in the L1 cache


@njit(**_JIT)
def _chain(buf, cur, prow, A, B, i0, nr, j0, j1, k_lo, k_hi, N, eoff, p, c, rnd, ovf, fma, k0,
           k1, k2, r, need_ts, ro_ok):  # fmt: skip
    """For rows ``i0 .. i0 + nr`` and columns ``j0 .. j1``: ``acc <- R(acc + A[i, k] B[k, j])``
    for ``k_lo <= k < k_hi`` (events ``k``, or ``2k`` and ``2k + 1`` when the product is
    rounded first). ``buf[cur]`` holds the running values (rows of width ``j1 - j0``), the
    other buffer receives the next ones. Returns ``(NaN errors, buffer holding the result)``."""
    w = j1 - j0
    err = 0
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
                err += _add(src, dst, bk, aik, ebase, k, p, c, rnd, ovf, k0, k1, k2, r, need_ts,
                            ro_ok)  # fmt: skip
            else:
                pr = prow[:w]
                err += _round(pr, bk, aik, ebase, 2 * k, p, c, rnd, ovf, k0, k1, k2, r)
                err += _add(src, dst, pr, 1.0, ebase, 2 * k + 1, p, c, rnd, ovf, k0, k1, k2, r,
                            need_ts, ro_ok)  # fmt: skip
        cur = nxt
    return err, cur


@njit(**_JIT)
def _sequential_span(lo, hi, A, B, out, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok):
    """``out[i, j] = R(...R(R(0 + A[i,0] B[0,j]) + A[i,1] B[1,j])...)``; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    c = sel_consts(p, rnd, r)
    err = 0
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        buf = np.empty((2, ROWS, JC))
        prow = np.empty(JC)
        e_g = 0
        for j0 in range(0, N, JC):
            j1 = min(N, j0 + JC)
            w = j1 - j0
            buf[0] = 0.0
            e, cur = _chain(buf, 0, prow, A, B, i0, nr, j0, j1, 0, K, N, eoff, p, c, rnd, ovf,
                            fma, k0, k1, k2, r, need_ts, ro_ok)  # fmt: skip
            e_g += e
            out[i0 : i0 + nr, j0:j1] = buf[cur, :nr, :w]
        err += e_g
    return err


@njit(**_JIT)
def _blocked_span(lo, hi, A, B, SA, SB, out, bk, p, pp, rnd, ovf, povf, fma, k0, k1, k2, r, eoff,
                  need_ts, ro_ok, p_need_ts, p_ro_ok, n_add):  # fmt: skip
    """Blocks of ``bk`` products summed from +0 in the accumulator ``p``, each partial times
    ``SA[i, t] * SB[t, j]`` (exact) added into ``pp`` (the promotion format) with one rounding
    (event ``n_add + t``); NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    nb = (K + bk - 1) // bk
    c = sel_consts(p, rnd, r)
    pc = sel_consts(pp, rnd, r)
    err = 0
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        buf = np.empty((2, ROWS, JC))
        tot = np.empty((2, ROWS, JC))
        prow = np.empty(JC)
        xs = np.empty(JC)
        e_g = 0
        for j0 in range(0, N, JC):
            j1 = min(N, j0 + JC)
            w = j1 - j0
            tot[0] = 0.0
            tc = 0
            for t in range(nb):
                buf[0] = 0.0
                e, cur = _chain(buf, 0, prow, A, B, i0, nr, j0, j1, t * bk, min(K, (t + 1) * bk),
                                N, eoff, p, c, rnd, ovf, fma, k0, k1, k2, r, need_ts,
                                ro_ok)  # fmt: skip
                e_g += e
                for rr in range(nr):
                    i = i0 + rr
                    part = buf[cur, rr]
                    sbt = SB[t, j0:j1]
                    for j in range(w):
                        xs[j] = part[j] * sbt[j]
                    e_g += _add(tot[tc, rr, :w], tot[1 - tc, rr, :w], xs[:w], SA[i, t],
                                eoff + i * N + j0, n_add + t, pp, pc, rnd, povf, k0, k1, k2, r,
                                p_need_ts, p_ro_ok)  # fmt: skip
                tc = 1 - tc
            out[i0 : i0 + nr, j0:j1] = tot[tc, :nr, :w]
        err += e_g
    return err


@njit(**_JIT)
def _promote_span(
    lo, hi, parts, SA, SB, out, pp, rnd, povf, k0, k1, k2, r, eoff, t0, p_need_ts, p_ro_ok
):
    """``out[i, j] <- R(out[i, j] + parts[t, i, j] * SA[i, t] * SB[t, j])`` for each block
    ``t`` in turn (exact partial sums, computed elsewhere); NaN-error count."""
    nb, M, N = parts.shape
    pc = sel_consts(pp, rnd, r)
    err = 0
    for i in range(lo, hi):
        xs = np.empty(N)
        tot = np.empty((2, N))
        tot[0] = out[i]
        tc = 0
        e_row = 0
        for t in range(nb):
            sa = SA[i, t0 + t]
            sbt = SB[t0 + t]
            pt = parts[t, i]
            for j in range(N):
                xs[j] = pt[j] * sbt[j] + 0.0  # an exact zero partial is +0
            e_row += _add(tot[tc], tot[1 - tc], xs, sa, eoff + i * N, t0 + t, pp, pc, rnd, povf,
                          k0, k1, k2, r, p_need_ts, p_ro_ok)  # fmt: skip
            tc = 1 - tc
        out[i] = tot[tc]
        err += e_row
    return err


@njit(**_JIT)
def _promote_native32_span(lo, hi, parts, SA, SB, out):
    """``promote`` into float32 under nearest-even: the exact sum ``total + part`` rounded to
    odd at 53 bits (TwoSum; it then rounds like the exact sum) and converted to float32 by the
    CPU (IEEE nearest-even, subnormals, overflow to inf). ``out`` (float32) holds the totals."""
    nb, M, N = parts.shape
    for i in range(lo, hi):
        row = out[i]
        for t in range(nb):
            sa = SA[i, t]
            sbt = SB[t]
            pt = parts[t, i]
            for j in range(N):
                tot = np.float64(row[j])
                x = pt[j] * (sa * sbt[j]) + 0.0  # an exact zero partial is +0
                s_ = tot + x
                bb = s_ - tot
                e = (tot - (s_ - bb)) + (x - bb)
                b = f64_bits(s_)
                step = np.int64(1) - np.int64(2) * np.int64((e > 0.0) != (s_ > 0.0))
                fix = np.int64(e != 0.0) & ~b & np.int64(s_ - s_ == 0.0)  # bit 0: round to odd
                row[j] = np.float32(bits_f64(b + step * (fix & 1)))
    return 0


# ---- the CPU's own IEEE arithmetic: float32/float64 accumulators, nearest-even -------------------


@njit(**_JIT)
def _sequential_native_span(lo, hi, A, B, out, fma_):
    """``sequential`` for an accumulator that is the arrays' own IEEE format (float32 arrays:
    binary32, float64 arrays: binary64) under nearest-even: IEEE 754 defines the CPU's fused
    multiply-add (``fma_``) or its multiply-then-add as exactly ``R(acc + a b)`` or
    ``R(acc + R(a b))``. NaN results are made canonical by the caller."""
    M, K = A.shape
    N = B.shape[1]
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        acc = np.zeros((ROWS, N), dtype=out.dtype)
        for k in range(K):
            bk = B[k]
            for rr in range(nr):
                a = A[i0 + rr, k]
                row = acc[rr]
                if fma_:
                    for j in range(N):
                        row[j] = fma(a, bk[j], row[j])
                else:
                    for j in range(N):
                        row[j] = row[j] + a * bk[j]
        out[i0 : i0 + nr] = acc[:nr]
    return 0


@njit(**_JIT)
def _blocked_native_span(lo, hi, A, B, out, bk, fma_):
    """``blocked`` with the accumulator and the promotion format both the arrays' own IEEE
    format, nearest-even, no block scales: the CPU's own arithmetic (see
    :func:`sequential_native`)."""
    M, K = A.shape
    N = B.shape[1]
    nb = (K + bk - 1) // bk
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        part = np.empty((ROWS, N), dtype=out.dtype)
        tot = np.zeros((ROWS, N), dtype=out.dtype)
        for t in range(nb):
            part[:] = 0.0
            for k in range(t * bk, min(K, (t + 1) * bk)):
                bkr = B[k]
                for rr in range(nr):
                    a = A[i0 + rr, k]
                    row = part[rr]
                    if fma_:
                        for j in range(N):
                            row[j] = fma(a, bkr[j], row[j])
                    else:
                        for j in range(N):
                            row[j] = row[j] + a * bkr[j]
            for rr in range(nr):
                tr = tot[rr]
                pr = part[rr]
                for j in range(N):
                    tr[j] = tr[j] + pr[j]
        out[i0 : i0 + nr] = tot[:nr]
    return 0


@njit(**_JIT)
def _sequential_rne32_span(lo, hi, A, B, out, plan, fma_, bk, promote):
    """``sequential`` (or, with ``promote``, ``blocked`` with ``bk`` products per block and
    float32 nearest-even promotions) into a narrow accumulator under nearest-even, on float32
    words: ``R(acc + a b) = rne32(fl32(acc + a b))`` where the caller has checked that every
    product is exact in float32 and that the float32 sum is exact or rounds innocuously
    (``2p + 1 <= 24`` with addends of at most ``p`` bits, docs/matmul.md). ``rne32`` is the
    select-only nearest-even core of the element kernels."""
    M, K = A.shape
    N = B.shape[1]
    step = bk if promote else max(K, 1)
    nb = (K + step - 1) // step
    for g in range(lo, hi):
        i0 = g * ROWS
        nr = min(ROWS, M - i0)
        acc = np.empty((ROWS, N), dtype=np.float32)
        tot = np.zeros((ROWS, N), dtype=np.float32)
        for t in range(nb):
            acc[:] = 0.0
            for k in range(t * step, min(K, (t + 1) * step)):
                bkr = B[k]
                for rr in range(nr):
                    a = A[i0 + rr, k]
                    row = acc[rr]
                    if fma_:
                        for j in range(N):
                            row[j] = bits_f32(rne32(f32_bits(row[j] + a * bkr[j]), plan))
                    else:
                        for j in range(N):
                            x = bits_f32(rne32(f32_bits(a * bkr[j]), plan))
                            row[j] = bits_f32(rne32(f32_bits(row[j] + x), plan))
            if promote:
                for rr in range(nr):
                    tr = tot[rr]
                    pr = acc[rr]
                    for j in range(N):
                        tr[j] = tr[j] + pr[j]
        out[i0 : i0 + nr] = tot[:nr] if promote else acc[:nr]
    return 0


# ---- data statistics ----------------------------------------------------------------------------


@njit(**_JIT)
def value_stats(v):
    """``(emax, lsb, bits, finite)`` of a flat float32/float64 array: the largest exponent and
    the smallest set-bit exponent of its non-zero finite values, their most significant bits,
    and whether every value is finite (``emax = -10**6``, ``lsb = 10**6`` without non-zero
    finite values)."""
    emx = -(10**6)
    lsb = 10**6
    nbits = 0
    finite = True
    for i in range(v.size):
        x = np.float64(v[i])
        if x - x != 0.0:
            finite = False
            continue
        if x == 0.0:
            continue
        s_, M_, E_ = split64(x)
        # bit length and trailing zeros from the exponents of exact float64 conversions
        bl = ((f64_bits(np.float64(M_)) >> 52) & 0x7FF) - 1022
        tz = ((f64_bits(np.float64(M_ & -M_)) >> 52) & 0x7FF) - 1023
        emx = max(emx, E_ + bl - 1)
        lsb = min(lsb, E_ + tz)
        nbits = max(nbits, bl - tz)
    return emx, lsb, nbits, finite


# ---- pairwise -----------------------------------------------------------------------------------


def pairwise_program(K: int) -> np.ndarray:
    """The post-order of the pairwise tree over ``K`` products (``mid = lo + (hi - lo) // 2``):
    ``k >= 0`` pushes product ``k`` (a leaf), ``-1`` pops two and pushes their rounded sum.
    The position of an entry is its event number."""
    ops: list[int] = []
    stack = [(0, K, False)] if K > 0 else []
    while stack:
        lo, hi, done = stack.pop()
        if hi - lo == 1:
            ops.append(lo)
        elif done:
            ops.append(-1)
        else:
            mid = lo + (hi - lo) // 2
            stack.append((lo, hi, True))
            stack.append((mid, hi, False))
            stack.append((lo, mid, False))
    return np.array(ops, dtype=np.int64)


@njit(**_JIT)
def _pairwise_span(
    lo, hi, A, B, out, prog, depth, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok
):
    """The pairwise tree of ``prog`` for each output row; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    c = sel_consts(p, rnd, r)
    err = 0
    for i in range(lo, hi):
        stack = np.empty((depth, N))
        tmp = np.empty(N)
        ebase = eoff + i * N
        sp = 0
        e_row = 0
        for t in range(prog.size):
            op = prog[t]
            if op >= 0:
                if fma and K > 1:  # exact leaf: the product enters its addition unrounded
                    aik = A[i, op]
                    bk = B[op]
                    dst = stack[sp]
                    for j in range(N):
                        dst[j] = aik * bk[j]
                else:
                    e_row += _round(stack[sp], B[op], A[i, op], ebase, t, p, c, rnd, ovf, k0,
                                    k1, k2, r)  # fmt: skip
                sp += 1
            else:
                e_row += _add(stack[sp - 2], tmp, stack[sp - 1], 1.0, ebase, t, p, c, rnd, ovf,
                              k0, k1, k2, r, need_ts, ro_ok)  # fmt: skip
                stack[sp - 2, :] = tmp
                sp -= 1
        if sp == 1:
            out[i, :] = stack[0]
        else:
            out[i, :] = 0.0
        err += e_row
    return err


# ---- exact sums ---------------------------------------------------------------------------------


@njit(**_JIT)
def _round_exact_span(lo, hi, X, out, p, rnd, ovf, k0, k1, k2, r, eoff, t):
    """``out = R(X)`` element by element (``X`` exact float64 values; event ``t``)."""
    M, N = X.shape
    c = sel_consts(p, rnd, r)
    err = 0
    for i in range(lo, hi):
        row = out[i]
        xs = X[i] + 0.0  # an exact zero sum is +0
        err += _round(row, xs, 1.0, eoff + i * N, t, p, c, rnd, ovf, k0, k1, k2, r)
    return err


@njit(**_JIT)
def _exact_dot_span(
    lo, hi, A, B, SA, SB, out, bk, base, nlimbs, p, rnd, ovf, k0, k1, k2, r, eoff, blocks
):
    """Exact sums in a wide integer accumulator (any data). Without ``blocks`` the sum over all
    of k is rounded once into ``p`` (event 0). With ``blocks``, each block of ``bk`` products
    (each times ``SA[i, t] * SB[t, j]``, exact) is added exactly to the running value, which is
    rounded into ``p`` (event ``t``). NaN and infinities as IEEE; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    nb = (K + bk - 1) // bk if blocks else 1
    step = bk if blocks else K
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    err = 0
    for i in range(lo, hi):
        limbs = np.zeros(nlimbs, np.int64)
        e_row = 0
        for j in range(N):
            e = eoff + i * N + j
            total = 0.0
            for t in range(nb):
                scale = SA[i, t] * SB[t, j] if blocks else 1.0
                kulisch_clear(limbs, nlimbs)
                nan = scale != scale
                pinf = False
                ninf = False
                for k in range(t * step, min(K, (t + 1) * step)):
                    x = (A[i, k] * B[k, j]) * scale
                    nan, pinf, ninf = kulisch_term(limbs, base, x, nan, pinf, ninf)
                u = random_u(k0, k1, k2, (e << 32) | t, r) if rnd == SR else 0
                st, s_, kept, q = kulisch_total_round(total, nan, pinf, ninf, limbs, nlimbs, base,
                                                      m, emin, emax, sigmax, sub, hz, sg, sp, rnd,
                                                      ovf, u, r)  # fmt: skip
                e_row += st == NAN_ERROR
                total = as_float64(st, s_, kept, q)
            out[i, j] = total
        err += e_row
    return err


# ---- hardware models: chains of truncating fused steps ----------------------------------------


@njit(**_JIT)
def _fused_chain_span(lo, hi, A, B, EA, EB, XA, XB, C, out, group, F, p_out, interval, promote_rnd):
    """The tensor-core model of ``docs/matmul.md``: groups of ``group`` products and the running
    value truncated onto ``2**(Emax - F)`` and added exactly, rounded toward zero to ``p_out``
    bits; ``EA``/``EB`` the inputs' nominal exponents (int64), ``XA[i, g]``/``XB[g, j]`` the
    block-scale exponents of group ``g``. With ``interval > 0`` the chain restarts from 0 every
    ``interval`` products and each partial is added into a float32 total (round to nearest
    even, ``promote_rnd``). ``C`` is the initial value (the total's, when promoting)."""
    M, K = A.shape
    N = B.shape[1]
    ng = (K + group - 1) // group
    for i in range(lo, hi):
        for j in range(N):
            total = C[i, j]
            acc = 0.0 if interval > 0 else total
            for g in range(ng):
                k_lo = g * group
                k_hi = min(K, k_lo + group)
                xs = XA[i, g] + XB[g, j]
                # specials: the IEEE float64 evaluation of the group and the running value
                fsum = acc
                for k in range(k_lo, k_hi):
                    fsum += A[i, k] * B[k, j]
                if fsum - fsum != 0.0 or acc - acc != 0.0 or xs != xs:
                    acc = np.nan if (fsum != fsum or xs != xs) else fsum
                else:
                    # the largest nominal exponent among the non-zero terms
                    emx = -(1 << 40)
                    for k in range(k_lo, k_hi):
                        if A[i, k] != 0.0 and B[k, j] != 0.0:
                            emx = max(emx, EA[i, k] + EB[k, j])
                    sh = np.int64(xs)
                    emx = emx + sh if emx > -(1 << 40) else emx
                    if acc != 0.0:
                        emx = max(emx, nominal_exponent(acc, -126))
                    if emx == -(1 << 40):
                        acc = 0.0
                    else:
                        grid = emx - F
                        S = fused_term(acc, grid)
                        for k in range(k_lo, k_hi):
                            x = A[i, k] * B[k, j]
                            if x != 0.0:
                                S += fused_term(x, grid - sh)
                        acc = fused_round(S, grid, p_out, -126, 127, RTZ)
                if interval > 0 and ((g + 1) * group % interval == 0 or g == ng - 1):
                    st, s_, kept, q = add_round(total, acc, 23, -126, 127, (1 << 24) - 1, 1, 1,
                                                1, 0, promote_rnd, 0, 0, 32)  # fmt: skip
                    total = as_float64(st, s_, kept, q)
                    acc = 0.0
            out[i, j] = total if interval > 0 else acc
    return 0


# ---- the entry points: the spans on the calling thread or the pool (kernels/runtime.py) --------


def _groups(M: int) -> int:
    return (M + ROWS - 1) // ROWS


def _rows_per_chunk(row_work: int) -> int:
    """Rows per chunk for row-wise spans: about 2**16 units of work per chunk."""
    return max(1, (1 << 16) // max(1, row_work))


def sequential(A, B, out, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok) -> int:
    """``out[i, j] = R(...R(R(0 + A[i,0] B[0,j]) + A[i,1] B[1,j])...)``; NaN-error count."""
    M, K = A.shape
    args = (A, B, out, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok)
    return run(M * B.shape[1] * max(K, 1), FAMILY, _sequential_span, _groups(M), 1, *args)


def blocked(A, B, SA, SB, out, bk, p, pp, rnd, ovf, povf, fma, k0, k1, k2, r, eoff, need_ts,
            ro_ok, p_need_ts, p_ro_ok, n_add) -> int:  # fmt: skip
    """Blocks of ``bk`` products summed in ``p``, promoted into ``pp`` (:func:`_blocked_span`)."""
    M, K = A.shape
    args = (A, B, SA, SB, out, bk, p, pp, rnd, ovf, povf, fma, k0, k1, k2, r, eoff, need_ts,
            ro_ok, p_need_ts, p_ro_ok, n_add)  # fmt: skip
    return run(M * B.shape[1] * max(K, 1), FAMILY, _blocked_span, _groups(M), 1, *args)


def promote(parts, SA, SB, out, pp, rnd, povf, k0, k1, k2, r, eoff, t0, p_need_ts, p_ro_ok):
    """Exact block partials added into ``pp`` (:func:`_promote_span`); NaN-error count."""
    nb, M, N = parts.shape
    args = (parts, SA, SB, out, pp, rnd, povf, k0, k1, k2, r, eoff, t0, p_need_ts, p_ro_ok)
    return run(nb * M * N, FAMILY, _promote_span, M, _rows_per_chunk(nb * N), *args)


def promote_native32(parts, SA, SB, out) -> int:
    """:func:`promote` into float32 under nearest-even (:func:`_promote_native32_span`)."""
    nb, M, N = parts.shape
    args = (parts, SA, SB, out)
    return run(nb * M * N, FAMILY, _promote_native32_span, M, _rows_per_chunk(nb * N), *args)


def sequential_native(A, B, out, fma_) -> int:
    """The CPU's own IEEE arithmetic (:func:`_sequential_native_span`)."""
    M, K = A.shape
    args = (A, B, out, fma_)
    return run(M * B.shape[1] * max(K, 1), FAMILY, _sequential_native_span, _groups(M), 1, *args)


def blocked_native(A, B, out, bk, fma_) -> int:
    """The CPU's own IEEE arithmetic in blocks (:func:`_blocked_native_span`)."""
    M, K = A.shape
    args = (A, B, out, bk, fma_)
    return run(M * B.shape[1] * max(K, 1), FAMILY, _blocked_native_span, _groups(M), 1, *args)


def sequential_rne32(A, B, out, plan, fma_, bk, promote) -> int:
    """Nearest-even on float32 words (:func:`_sequential_rne32_span`)."""
    M, K = A.shape
    args = (A, B, out, plan, fma_, bk, promote)
    return run(M * B.shape[1] * max(K, 1), FAMILY, _sequential_rne32_span, _groups(M), 1, *args)


def pairwise(A, B, out, prog, depth, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts,
             ro_ok) -> int:  # fmt: skip
    """The pairwise tree of ``prog`` for each row (:func:`_pairwise_span`); NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    args = (A, B, out, prog, depth, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok)
    return run(M * N * max(K, 1), FAMILY, _pairwise_span, M, _rows_per_chunk(N * K), *args)


def round_exact(X, out, p, rnd, ovf, k0, k1, k2, r, eoff, t) -> int:
    """``out = R(X)`` (:func:`_round_exact_span`); NaN-error count."""
    M, N = X.shape
    args = (X, out, p, rnd, ovf, k0, k1, k2, r, eoff, t)
    return run(M * N, FAMILY, _round_exact_span, M, _rows_per_chunk(N), *args)


def exact_dot(A, B, SA, SB, out, bk, base, nlimbs, p, rnd, ovf, k0, k1, k2, r, eoff,
              blocks) -> int:  # fmt: skip
    """Exact sums in a wide integer accumulator (:func:`_exact_dot_span`); NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    args = (A, B, SA, SB, out, bk, base, nlimbs, p, rnd, ovf, k0, k1, k2, r, eoff, blocks)
    return run(M * N * max(K, 1), FAMILY, _exact_dot_span, M, _rows_per_chunk(N * K), *args)


def fused_chain(A, B, EA, EB, XA, XB, C, out, group, F, p_out, interval, promote_rnd) -> int:
    """The tensor-core model (:func:`_fused_chain_span`)."""
    M, K = A.shape
    N = B.shape[1]
    args = (A, B, EA, EB, XA, XB, C, out, group, F, p_out, interval, promote_rnd)
    return run(M * N * max(K, 1), FAMILY, _fused_chain_span, M, _rows_per_chunk(N * K), *args)
