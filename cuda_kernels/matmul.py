"""numba-CUDA kernels of the emulated matrix multiplication (``docs/matmul.md``): the orders
whose every addition is rounded into the accumulator, ``"sequential"``, ``"blocked"`` and
``"pairwise"``, and the exact sums (``accumulator=None``, blocked or not).

One thread per output element (a grid-stride loop over the flat output, batches included), which
runs the definition literally: ``acc = +0``; ``acc <- R(acc + a_k b_k)`` for each ``k`` (the
product exact in float64, the inputs being float32 values), or with ``fma == 0`` the product
rounded into the accumulator first; in blocked order each run of ``bk`` products summed so from
``+0`` and added into the promotion format with one rounding; in pairwise order the CPU's
post-order program of the tree, on a stack in local memory; exact sums in the CPU's wide
integer accumulator, in local memory. Every rounding is the CPU
kernels' own scalar core: :func:`qemu_arrays.formats.accumulate.add_round` (an exact sum of two
float64 values rounded once) and :func:`~qemu_arrays.formats.accumulate.round_value`, which
numba compiles again for the CUDA target, so the device gives the CPU's bits; stochastic
rounding draws event ``t`` of output element ``e`` from the same counter-based
``random_u(key, (e << 32) | t, r)``. No fast path: correctness first.

Formats are run-time arguments: ``P`` (int64) holds the accumulator's ten
:meth:`~qemu_arrays.formats.spec.FloatFormat.params` at ``P[0:10]`` and the promotion format's at
``P[10:20]``, so one compiled kernel per input and output dtype serves every format and mode.
``A`` is ``(batches of a, M, K)``, ``B`` ``(batches of b, K, N)``, ``IA``/``IB`` the batch of
``a``/``b`` of each output batch (numpy's broadcasting, resolved on the host), ``out`` flat.

This module imports only :mod:`qemu_arrays.formats`, numba and NumPy
(``cuda_kernels/__init__.py``).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from qemu_arrays.formats.accumulate import (
    add_round,
    as_float64,
    kulisch_clear,
    kulisch_term,
    kulisch_total_round,
    round_value,
)
from qemu_arrays.formats.cores import NAN_ERROR, SR, random_u

__all__ = [
    "LIMBS",
    "STACK",
    "check_float32_values",
    "exact_matmul",
    "pairwise_matmul",
    "rounded_matmul",
]


@cuda.jit(device=True)
def _u(rnd, k0, k1, k2, ge, t, r):
    """The random integer of rounding event ``t`` of output element ``ge`` (0 unless
    stochastic): the CPU kernels' rule."""
    if rnd == SR:
        return random_u(k0, k1, k2, (ge << 32) | t, r)
    return 0


@cuda.jit(device=True)
def _add(acc, x, P, o, rnd, ovf, k0, k1, k2, r, ge, t):
    """``R(acc + x)`` into the format ``P[o:o + 10]`` (event ``t``): (value, NaN errors)."""
    u = _u(rnd, k0, k1, k2, ge, t, r)
    st, s, kept, q = add_round(acc, x, P[o], P[o + 1], P[o + 2], P[o + 3], P[o + 4], P[o + 5],
                               P[o + 6], P[o + 7], rnd, ovf, u, r)  # fmt: skip
    return as_float64(st, s, kept, q), 1 if st == NAN_ERROR else 0


@cuda.jit(device=True)
def _round(x, P, o, rnd, ovf, k0, k1, k2, r, ge, t):
    """``R(x)`` of the exact float64 ``x`` into ``P[o:o + 10]`` (event ``t``)."""
    u = _u(rnd, k0, k1, k2, ge, t, r)
    st, s, kept, q = round_value(x, P[o], P[o + 1], P[o + 2], P[o + 3], P[o + 4], P[o + 5],
                                 P[o + 6], P[o + 7], rnd, ovf, u, r)  # fmt: skip
    return as_float64(st, s, kept, q), 1 if st == NAN_ERROR else 0


@cuda.jit(device=True)
def _chain(A, B, ia, ib, i, j, k_lo, k_hi, P, rnd, ovf, fma, k0, k1, k2, r, ge):
    """``acc <- R(acc + A[ia, i, k] B[ib, k, j])`` from ``+0`` for ``k_lo <= k < k_hi``
    (events ``k``; ``2k`` and ``2k + 1`` with the product rounded first): (value, errors)."""
    acc = 0.0
    nerr = 0
    for k in range(k_lo, k_hi):
        x = np.float64(A[ia, i, k]) * np.float64(B[ib, k, j])
        if fma == 1:
            acc, bad = _add(acc, x, P, 0, rnd, ovf, k0, k1, k2, r, ge, k)
        else:
            xr, bad0 = _round(x, P, 0, rnd, ovf, k0, k1, k2, r, ge, 2 * k)
            acc, bad = _add(acc, xr, P, 0, rnd, ovf, k0, k1, k2, r, ge, 2 * k + 1)
            bad += bad0
        nerr += bad
    return acc, nerr


@cuda.jit(device=True)
def _element(e, mn, N, IA, IB):
    """Output element ``e`` (batches flattened, ``mn = M * N``): the batch indices of ``a``
    and ``b`` (``IA``, ``IB``), the row and the column."""
    bi = e // mn
    rem = e - bi * mn
    i = rem // N
    return IA[bi], IB[bi], i, rem - i * N


@cuda.jit
def rounded_matmul(A, B, IA, IB, out, P, err, bk, blocked, rnd, ovf, fma, k0, k1, k2, r):
    """``out[e]`` for every output element ``e`` (C order over ``(batch, M, N)``): the
    sequential chain over all of ``k`` (``blocked == 0``), or blocks of ``bk`` products
    promoted into ``P[10:20]`` (promotion ``t`` is event ``K + t``, ``2K + t`` with
    ``fma == 0``). NaN results in a format without NaN are counted in ``err[0]``."""
    M = A.shape[1]
    K = A.shape[2]
    N = B.shape[2]
    mn = M * N
    n = IA.size * mn
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for e in range(start, n, stride):
        ia, ib, i, j = _element(e, mn, N, IA, IB)
        if blocked == 1:
            n_add = K if fma == 1 else 2 * K
            tot = 0.0
            nerr = 0
            nb = (K + bk - 1) // bk
            for t in range(nb):
                part, ne = _chain(A, B, ia, ib, i, j, t * bk, min(K, (t + 1) * bk), P, rnd, ovf,
                                  fma, k0, k1, k2, r, e)  # fmt: skip
                tot, bad = _add(tot, part, P, 10, rnd, ovf, k0, k1, k2, r, e, n_add + t)
                nerr += ne + bad
            val = tot
        else:
            val, nerr = _chain(A, B, ia, ib, i, j, 0, K, P, rnd, ovf, fma, k0, k1, k2, r, e)
        out[e] = val
        if nerr > 0:
            cuda.atomic.add(err, 0, nerr)


#: the pairwise tree's stack: ``ceil(log2 K) + 2`` entries, enough for any ``K < 2**62``
STACK = 64


@cuda.jit
def pairwise_matmul(A, B, IA, IB, out, P, err, prog, rnd, ovf, fma, k0, k1, k2, r):
    """``out[e]`` in pairwise order: ``prog`` is the tree's post-order
    (:func:`qemu_arrays.kernels.matmul.pairwise_program`: ``k >= 0`` pushes product ``k``,
    ``-1`` pops two and pushes their rounded sum), the position of an entry its event. Leaves
    are exact products with ``fma == 1`` (a single product is rounded), else rounded."""
    M = A.shape[1]
    K = A.shape[2]
    N = B.shape[2]
    mn = M * N
    n = IA.size * mn
    stack = cuda.local.array(STACK, np.float64)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for e in range(start, n, stride):
        ia, ib, i, j = _element(e, mn, N, IA, IB)
        sp = 0
        nerr = 0
        for t in range(prog.size):
            op = prog[t]
            if op >= 0:
                x = np.float64(A[ia, i, op]) * np.float64(B[ib, op, j])
                if fma != 1 or K == 1:
                    x, bad = _round(x, P, 0, rnd, ovf, k0, k1, k2, r, e, t)
                    nerr += bad
                stack[sp] = x
                sp += 1
            else:
                v, bad = _add(stack[sp - 2], stack[sp - 1], P, 0, rnd, ovf, k0, k1, k2, r, e, t)
                nerr += bad
                stack[sp - 2] = v
                sp -= 1
        out[e] = stack[0] if sp == 1 else 0.0
        if nerr > 0:
            cuda.atomic.add(err, 0, nerr)


#: the wide accumulator's 32-bit digits per thread: enough for products of float32 values
#: (bits 2**-298 to 2**256, and K up to 2**62) and totals of formats up to float64's range
LIMBS = 72


@cuda.jit
def exact_matmul(A, B, IA, IB, out, P, err, bk, blocked, base, nlimbs, rnd, ovf, k0, k1, k2, r):
    """``out[e]`` for ``accumulator=None``: the exact sum (a wide integer accumulator of
    ``nlimbs <= LIMBS`` digits from ``2**base`` in local memory) rounded once into ``P[0:10]``
    (event 0); with ``blocked == 1``, each block of ``bk`` products added exactly to the running
    value and rounded (event ``t``). The CPU kernel's shared steps
    (:func:`~qemu_arrays.formats.accumulate.kulisch_term`, ``kulisch_total_round``)."""
    M = A.shape[1]
    K = A.shape[2]
    N = B.shape[2]
    mn = M * N
    n = IA.size * mn
    limbs = cuda.local.array(LIMBS, np.int64)
    step = bk if blocked == 1 else K
    nb = (K + bk - 1) // bk if blocked == 1 else 1
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for e in range(start, n, stride):
        ia, ib, i, j = _element(e, mn, N, IA, IB)
        total = 0.0
        nerr = 0
        for t in range(nb):
            kulisch_clear(limbs, nlimbs)
            nan = False
            pinf = False
            ninf = False
            for k in range(t * step, min(K, (t + 1) * step)):
                x = np.float64(A[ia, i, k]) * np.float64(B[ib, k, j])
                nan, pinf, ninf = kulisch_term(limbs, base, x, nan, pinf, ninf)
            u = _u(rnd, k0, k1, k2, e, t, r)
            st, s, kept, q = kulisch_total_round(total, nan, pinf, ninf, limbs, nlimbs, base, P[0],
                                                 P[1], P[2], P[3], P[4], P[5], P[6], P[7], rnd,
                                                 ovf, u, r)  # fmt: skip
            nerr += 1 if st == NAN_ERROR else 0
            total = as_float64(st, s, kept, q)
        out[e] = total
        if nerr > 0:
            cuda.atomic.add(err, 0, nerr)


@cuda.jit
def check_float32_values(x, err):
    """Count in ``err[0]`` the values of the float64 array ``x`` (flat) that are not float32
    values (NaN excepted): matmul needs exact products (``docs/matmul.md``)."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.size, stride):
        v = x[i]
        if v == v and np.float64(np.float32(v)) != v:
            cuda.atomic.add(err, 0, 1)
