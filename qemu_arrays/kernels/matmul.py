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
``e`` from ``random_u(key, (e << 32) | t, r)``. Rows are split over threads; results do not
depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from qemu_arrays.formats.accumulate import (
    add_round,
    as_float64,
    fused_round,
    fused_term,
    kulisch_add,
    kulisch_clear,
    kulisch_round,
    nominal_exponent,
    round_value,
    split64,
)
from qemu_arrays.formats.bits import bits_f64, f64_bits
from qemu_arrays.formats.cores import NAN_ERROR, RDN, RNE, RTZ, SR, random_u, round_bits_fast
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

_PAR = {"parallel": True, "cache": True, "nogil": True}
_JIT = {"cache": True, "nogil": True}
_INL = {"cache": True, "nogil": True, "inline": "always"}

SIGN = np.int64(-9223372036854775807 - 1)  # the sign bit of a float64, 1 << 63
ROWS = 4  # rows of the output per task: each B[k, :] load serves four rows


# ---- one vector of additions -------------------------------------------------------------------


@njit(**_INL)
def _add_span(acc, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r, need_ts, ro_ok):
    """``acc[j] <- R(acc[j] + xscale * xs[j])`` for every ``j`` (``xscale * xs[j]`` exact);
    returns the count of NaN errors. ``ebase + j`` is the output element of lane ``j``."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    n = acc.size
    nslow = 0
    for j in range(n):
        a0 = acc[j]
        x = xscale * xs[j]
        u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
        s = a0 + x
        b = f64_bits(s)
        good = True
        if need_ts:
            bb = s - a0
            e = (a0 - (s - bb)) + (x - bb)
            nz = e != 0.0
            step = np.int64(1) if (e > 0.0) == (s > 0.0) else np.int64(-1)
            b = b + step * np.int64(nz and (b & 1) == 0)  # round to odd at 53 bits
            good = ro_ok or not nz
        ok, mag = round_bits_fast(b, 11, 52, m, emin, emax, sigmax, sg, rnd, u, r)
        ok = ok and good
        acc[j] = bits_f64((b & SIGN) | mag) if ok else a0
        slow[j] = not ok
        nslow += not ok
    err = 0
    if nslow:
        for j in range(n):
            if slow[j]:
                x = xscale * xs[j]
                u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
                st, s_, kept, q = add_round(
                    acc[j], x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
                )
                err += st == NAN_ERROR
                acc[j] = as_float64(st, s_, kept, q)
    return err


@njit(**_INL)
def _round_span(dst, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r):
    """``dst[j] <- R(xscale * xs[j])`` (one rounding of an exact value); NaN-error count."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    n = dst.size
    nslow = 0
    for j in range(n):
        x = xscale * xs[j]
        u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
        b = f64_bits(x)
        ok, mag = round_bits_fast(b, 11, 52, m, emin, emax, sigmax, sg, rnd, u, r)
        dst[j] = bits_f64((b & SIGN) | mag) if ok else x
        slow[j] = not ok
        nslow += not ok
    err = 0
    if nslow:
        for j in range(n):
            if slow[j]:
                u = random_u(k0, k1, k2, ((ebase + j) << 32) | t, r) if rnd == SR else 0
                st, s_, kept, q = round_value(
                    dst[j], m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
                )
                err += st == NAN_ERROR
                dst[j] = as_float64(st, s_, kept, q)
    return err


@njit(**_JIT)
def _add(acc, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r, need_ts, ro_ok):
    """:func:`_add_span` with the common modes as literals, so that their branches fold (one
    compiled function; the kernels call it once per row and k)."""
    if rnd == RNE:
        if need_ts:
            return _add_span(acc, xs, xscale, slow, ebase, t, p, RNE, ovf, k0, k1, k2, r,
                             True, ro_ok)  # fmt: skip
        return _add_span(acc, xs, xscale, slow, ebase, t, p, RNE, ovf, k0, k1, k2, r,
                         False, ro_ok)  # fmt: skip
    if rnd == SR:
        return _add_span(acc, xs, xscale, slow, ebase, t, p, SR, ovf, k0, k1, k2, r, True, ro_ok)
    return _add_span(acc, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r, True, ro_ok)


@njit(**_JIT)
def _round(dst, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r):
    """:func:`_round_span` with the common modes as literals."""
    if rnd == RNE:
        return _round_span(dst, xs, xscale, slow, ebase, t, p, RNE, ovf, k0, k1, k2, r)
    if rnd == SR:
        return _round_span(dst, xs, xscale, slow, ebase, t, p, SR, ovf, k0, k1, k2, r)
    return _round_span(dst, xs, xscale, slow, ebase, t, p, rnd, ovf, k0, k1, k2, r)


# ---- sequential and blocked (rounded partial sums) ---------------------------------------------


@njit(**_JIT)
def _chain(acc, prow, slow, A, B, i, k_lo, k_hi, ebase, p, rnd, ovf, fma, k0, k1, k2, r,
           need_ts, ro_ok):  # fmt: skip
    """``acc <- R(acc + A[i, k] * B[k, :])`` for ``k_lo <= k < k_hi`` (events ``k``, or ``2k``
    and ``2k + 1`` when the product is rounded first)."""
    err = 0
    for k in range(k_lo, k_hi):
        aik = A[i, k]
        if fma:
            err += _add(acc, B[k], aik, slow, ebase, k, p, rnd, ovf, k0, k1, k2, r, need_ts, ro_ok)
        else:
            err += _round(prow, B[k], aik, slow, ebase, 2 * k, p, rnd, ovf, k0, k1, k2, r)
            err += _add(acc, prow, 1.0, slow, ebase, 2 * k + 1, p, rnd, ovf, k0, k1, k2, r,
                        need_ts, ro_ok)  # fmt: skip
    return err


@njit(**_PAR)
def sequential(A, B, out, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok):
    """``out[i, j] = R(...R(R(0 + A[i,0] B[0,j]) + A[i,1] B[1,j])...)``; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    err = 0
    for i in prange(M):
        acc = np.zeros(N)
        prow = np.empty(N)
        slow = np.empty(N, np.bool_)
        err += _chain(acc, prow, slow, A, B, i, 0, K, eoff + i * N, p, rnd, ovf, fma, k0, k1,
                      k2, r, need_ts, ro_ok)  # fmt: skip
        out[i, :] = acc
    return err


@njit(**_PAR)
def blocked(A, B, SA, SB, out, bk, p, pp, rnd, ovf, povf, fma, k0, k1, k2, r, eoff, need_ts,
            ro_ok, p_need_ts, p_ro_ok, n_add):  # fmt: skip
    """Blocks of ``bk`` products summed from +0 in the accumulator ``p``, each partial times
    ``SA[i, t] * SB[t, j]`` (exact) added into ``pp`` (the promotion format) with one rounding
    (event ``n_add + t``); NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    nb = (K + bk - 1) // bk
    err = 0
    for i in prange(M):
        part = np.empty(N)
        total = np.zeros(N)
        prow = np.empty(N)
        slow = np.empty(N, np.bool_)
        xs = np.empty(N)
        ebase = eoff + i * N
        e_row = 0
        for t in range(nb):
            part[:] = 0.0
            e_row += _chain(part, prow, slow, A, B, i, t * bk, min(K, (t + 1) * bk), ebase, p,
                          rnd, ovf, fma, k0, k1, k2, r, need_ts, ro_ok)  # fmt: skip
            sa = SA[i, t]
            sbt = SB[t]
            for j in range(N):
                xs[j] = part[j] * sbt[j]
            e_row += _add(total, xs, sa, slow, ebase, n_add + t, pp, rnd, povf, k0, k1, k2, r,
                          p_need_ts, p_ro_ok)  # fmt: skip
        out[i, :] = total
        err += e_row
    return err


@njit(**_PAR)
def promote(parts, SA, SB, out, pp, rnd, povf, k0, k1, k2, r, eoff, t0, p_need_ts, p_ro_ok):
    """``out[i, j] <- R(out[i, j] + parts[t, i, j] * SA[i, t] * SB[t, j])`` for each block
    ``t`` in turn (exact partial sums, computed elsewhere); NaN-error count."""
    nb, M, N = parts.shape
    err = 0
    for i in prange(M):
        slow = np.empty(N, np.bool_)
        xs = np.empty(N)
        total = out[i]
        e_row = 0
        for t in range(nb):
            sa = SA[i, t0 + t]
            sbt = SB[t0 + t]
            pt = parts[t, i]
            for j in range(N):
                xs[j] = pt[j] * sbt[j] + 0.0  # an exact zero partial is +0
            e_row += _add(total, xs, sa, slow, eoff + i * N, t0 + t, pp, rnd, povf, k0, k1, k2,
                          r, p_need_ts, p_ro_ok)  # fmt: skip
        err += e_row
    return err


# ---- pairwise -----------------------------------------------------------------------------------


def pairwise_program(K: int) -> np.ndarray:
    """The post-order of the pairwise tree over ``K`` products (``mid = lo + (hi - lo) // 2``):
    ``k >= 0`` pushes product ``k`` (a leaf), ``-1`` pops two and pushes their rounded sum.
    The position of an entry is its event number."""
    ops: list[int] = []
    stack = [(0, K, False)]
    # iterative post-order: (lo, hi, expanded)
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


@njit(**_PAR)
def pairwise(A, B, out, prog, depth, p, rnd, ovf, fma, k0, k1, k2, r, eoff, need_ts, ro_ok):
    """The pairwise tree of ``prog`` for each output row; NaN-error count."""
    M, K = A.shape
    N = B.shape[1]
    err = 0
    for i in prange(M):
        stack = np.empty((depth, N))
        slow = np.empty(N, np.bool_)
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
                    e_row += _round(stack[sp], B[op], A[i, op], slow, ebase, t, p, rnd, ovf,
                                    k0, k1, k2, r)  # fmt: skip
                sp += 1
            else:
                e_row += _add(stack[sp - 2], stack[sp - 1], 1.0, slow, ebase, t, p, rnd, ovf,
                              k0, k1, k2, r, need_ts, ro_ok)  # fmt: skip
                sp -= 1
        if sp == 1:
            out[i, :] = stack[0]
        else:
            out[i, :] = 0.0
        err += e_row
    return err


# ---- exact sums ---------------------------------------------------------------------------------


@njit(**_PAR)
def round_exact(X, out, p, rnd, ovf, k0, k1, k2, r, eoff, t):
    """``out = R(X)`` element by element (``X`` exact float64 values; event ``t``)."""
    M, N = X.shape
    err = 0
    for i in prange(M):
        slow = np.empty(N, np.bool_)
        row = out[i]
        xs = X[i] + 0.0  # an exact zero sum is +0
        err += _round(row, xs, 1.0, slow, eoff + i * N, t, p, rnd, ovf, k0, k1, k2, r)
    return err


@njit(**_PAR)
def exact_dot(A, B, SA, SB, out, bk, base, nlimbs, p, rnd, ovf, k0, k1, k2, r, eoff, blocks):
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
    for i in prange(M):
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
                    if x - x == 0.0:
                        if x != 0.0:
                            s_, M_, E_ = split64(x)
                            kulisch_add(limbs, base, s_, M_, E_)
                    elif x != x:
                        nan = True
                    elif x > 0:
                        pinf = True
                    else:
                        ninf = True
                u = random_u(k0, k1, k2, (e << 32) | t, r) if rnd == SR else 0
                if nan or pinf or ninf or total - total != 0.0:
                    special = np.nan if (nan or (pinf and ninf)) else (np.inf if pinf else -np.inf)
                    if not (nan or pinf or ninf):
                        special = 0.0
                    st, s_, kept, q = add_round(total, special, m, emin, emax, sigmax, sub, hz,
                                                sg, sp, rnd, ovf, u, r)  # fmt: skip
                else:
                    # an exact zero: +0, except under DOWN when it is not +0 + +0 (IEEE)
                    zs = rnd == RDN and not (total == 0.0 and f64_bits(total) >= 0)
                    if total != 0.0:
                        s_, M_, E_ = split64(total)
                        kulisch_add(limbs, base, s_, M_, E_)
                    st, s_, kept, q = kulisch_round(limbs, nlimbs, base, 1 if zs else 0, m, emin,
                                                    emax, sigmax, sub, hz, sg, sp, rnd, ovf, u,
                                                    r)  # fmt: skip
                e_row += st == NAN_ERROR
                total = as_float64(st, s_, kept, q)
            out[i, j] = total
        err += e_row
    return err


# ---- hardware models: chains of truncating fused steps ----------------------------------------


@njit(**_PAR)
def fused_chain(A, B, EA, EB, XA, XB, C, out, group, F, p_out, interval, promote_rnd):
    """The tensor-core model of ``docs/matmul.md``: groups of ``group`` products and the running
    value truncated onto ``2**(Emax - F)`` and added exactly, rounded toward zero to ``p_out``
    bits; ``EA``/``EB`` the inputs' nominal exponents (int64), ``XA[i, g]``/``XB[g, j]`` the
    block-scale exponents of group ``g``. With ``interval > 0`` the chain restarts from 0 every
    ``interval`` products and each partial is added into a float32 total (round to nearest
    even, ``promote_rnd``). ``C`` is the initial value (the total's, when promoting)."""
    M, K = A.shape
    N = B.shape[1]
    ng = (K + group - 1) // group
    for i in prange(M):
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
