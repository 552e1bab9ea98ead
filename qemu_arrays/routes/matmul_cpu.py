"""The matmul route of NumPy arrays, PyTorch CPU tensors and QArrays: the numba kernels of
:mod:`qemu_arrays.kernels.matmul` (``docs/matmul.md``).

The operands become float64 arrays of their (element) values; the plan
(:func:`qemu_arrays.routes.matmul_common.plan`) fixes the order, formats and output dtype; the
data statistics choose, for each order, the cheapest path that is exact:

* additions: the float64 sum is exact (the values' span fits 53 bits), or nearest-even with
  narrow addends (no TwoSum needed), else TwoSum with round to odd; the general core for the
  lanes the fast path leaves;
* exact sums: one float64 (or float32) BLAS product per block when every partial sum of the
  data fits 53 (24) bits, else the wide integer accumulator.
"""

from __future__ import annotations

import math

import numpy as np

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.formats.spec import FloatFormat
from qemu_arrays.matmul_request import MatmulRequest
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import cpu
from qemu_arrays.routes.common import random_keys
from qemu_arrays.routes.matmul_common import (
    Operand,
    Plan,
    Stats,
    element_format,
    nan_in_accumulator,
    plan,
    stats,
    sum_span,
)
from qemu_arrays.validation import as_float_array

__all__ = ["operand", "run"]

PANEL_BYTES = 16 << 20  # partial sums of one panel of rows kept below this (cache, memory)


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".", 1)[0] == "torch"


def _decode(codes, fmt) -> np.ndarray:
    return np.asarray(cpu.run(np.asarray(codes), Request(Op.DECODE, fmt, dtype=np.float64)))


def _check_float32_values(v: np.ndarray, name: str) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        back = v.astype(np.float32).astype(np.float64)
    bad = ~((back == v) | np.isnan(v))
    if bad.any():
        x = float(v.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        msg = (
            f"{name} is a float64 array holding values that are not float32 values (e.g. "
            f"{x!r}); matmul needs exact products, which float64 holds for float32 values; "
            f"hint: quantize {name} first (any format of at most 24 significand bits), or "
            f"{name}.astype(numpy.float32)"
        )
        raise ValueError(msg)


def operand(x, name: str) -> Operand:
    """A NumPy array, PyTorch CPU tensor or QArray as an :class:`Operand` (float64 values)."""
    proto = getattr(type(x), "__qemu_arrays_operand__", None)
    if proto is not None:
        fmt, enc = proto(x)
        wide = np.dtype(getattr(x, "dtype", np.float32)) == np.float64
        if isinstance(fmt, FloatFormat):
            return Operand(_decode(enc.codes, fmt), fmt, wide)
        if isinstance(fmt, BlockFormat) and not fmt.tensor_scale:
            el = fmt.element
            if isinstance(el, FloatFormat):
                vals = _decode(enc.codes, el)
            else:
                k = np.asarray(enc.codes).astype(np.int64)
                k = np.where(k >> (el.bits - 1), k - (1 << el.bits), k)
                vals = k * 2.0**-fmt.element_fraction_bits
            scales = _decode(enc.scales, fmt.scale)
            axis = enc.axis if enc.axis is not None else vals.ndim - 1
            return Operand(vals, el, wide, block=fmt, scales=scales, axis=axis % vals.ndim)
        msg = (
            f"{name} is a QArray of {fmt.name!r}: matmul takes QArrays of float element formats "
            "and of MX block formats (power-of-two scales); scaled integer and two-level (NVFP4) "
            f"formats are not modelled yet; hint: matmul({name}.dequantize(), ...)"
        )
        raise NotImplementedError(msg)
    if _is_tensor(x):
        from qemu_arrays.routes.torch_cpu import to_numpy

        x = to_numpy(x)
    if not isinstance(x, np.ndarray):
        msg = f"{name} must be an array, got {type(x).__name__}"
        raise TypeError(msg)
    fmt = element_format(x.dtype, name)
    arr = as_float_array(x, name)
    v = arr.astype(np.float64)
    if arr.dtype == np.float64:
        _check_float32_values(v, name)
    return Operand(v, fmt, arr.dtype == np.float64)


# ---- the 2-D cases ------------------------------------------------------------------------------


def _keys(req: MatmulRequest):
    seed = req.seed if req.rounding is Rounding.STOCHASTIC else 0
    return random_keys(seed or 0, req.stream)


def _fast_flags(fmt: FloatFormat, rnd: Rounding, r: int, exact_sum: bool, addend_bits: int):
    """(need TwoSum, round to odd enough) for additions into ``fmt`` (docs/matmul.md)."""
    p = fmt.precision
    ro_ok = fmt.mantissa_bits <= 50 and (rnd is not Rounding.STOCHASTIC or p + r <= 52)
    no_ts = exact_sum or (rnd is Rounding.NEAREST_EVEN and addend_bits <= p and 2 * p + 1 <= 53)
    return not no_ts, ro_ok


def _acc_span(fmt: FloatFormat, sa: Stats, sb: Stats, fma: bool) -> bool:
    """Whether every float64 sum of an accumulator value and an addend is exact."""
    bottom = fmt.emin - fmt.mantissa_bits
    top = fmt.emax + 2
    if fma and sa.bits and sb.bits:
        bottom = min(bottom, sa.lsb + sb.lsb)
        top = max(top, sa.emax + sb.emax + 3)
    return top - bottom <= 53


def _scale_exps(s: np.ndarray | None) -> tuple[int, int]:
    if s is None:
        return 0, 0
    f = s[np.isfinite(s) & (s != 0)]
    if f.size == 0:
        return 0, 0
    e = np.frexp(f)[1] - 1
    return int(e.min()), int(e.max())


def _blas_parts(A, B, bk, use32):
    """The exact partial sums of every block: (nb, M, N) float64."""
    M, K = A.shape
    N = B.shape[1]
    nb = -(-K // bk)
    pad = nb * bk - K
    if pad:
        A = np.concatenate([A, np.zeros((M, pad))], axis=1)
        B = np.concatenate([B, np.zeros((pad, N))], axis=0)
    A3 = A.reshape(M, nb, bk).transpose(1, 0, 2)
    B3 = B.reshape(nb, bk, N)
    if use32:
        return np.matmul(A3.astype(np.float32), B3.astype(np.float32)).astype(np.float64)
    return np.matmul(A3, B3)


def _matmul2d(A, B, SA, SB, pl: Plan, req, sa: Stats, sb: Stats, eoff: int) -> tuple:
    """One 2-D product: (out float64 M x N, NaN-error count)."""
    from qemu_arrays.kernels import matmul as km
    from qemu_arrays.kernels.elements import threads_for

    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N))
    rnd = req.rounding
    k0, k1, k2 = _keys(req)
    r = pl.r
    acc = pl.acc
    work = M * N * max(K, 1)
    if pl.order == "exact" or (pl.order == "blocked" and acc is None):
        blocks = pl.order == "blocked"
        fmt = pl.promote if blocks else pl.result
        n = pl.block_k if blocks else K
        lo, hi = (0, 0)
        if blocks:
            la, ha = _scale_exps(SA)
            lb, hb = _scale_exps(SB)
            lo, hi = la + lb, ha + hb
        span = sum_span(sa, sb, n)
        finite = sa.finite and sb.finite and (SA is None or np.isfinite(SA).all()) and (
            SB is None or np.isfinite(SB).all())  # fmt: skip
        if finite and span <= 53:
            use32 = span <= 24 and sa.lsb + sb.lsb >= -149 and sa.emax + sb.emax + span < 120
            if not blocks:
                X = (A.astype(np.float32) @ B.astype(np.float32)).astype(np.float64) if use32 \
                    else A @ B  # fmt: skip
                with threads_for(work):
                    err = km.round_exact(X, out, fmt.params(), int(rnd), 0, k0, k1, k2, r, eoff, 0)
                return out, err
            ones_a = np.ones((M, -(-K // pl.block_k))) if SA is None else SA
            ones_b = np.ones((-(-K // pl.block_k), N)) if SB is None else SB
            nb = ones_a.shape[1]
            rows = max(1, min(M, PANEL_BYTES // max(1, nb * N * 8)))
            err = 0
            p_ts, p_ro = _fast_flags(fmt, rnd, r, False, 53)
            for r0 in range(0, M, rows):
                r1 = min(M, r0 + rows)
                parts = _blas_parts(A[r0:r1], B, pl.block_k, use32)
                with threads_for(work):
                    err += km.promote(parts, ones_a[r0:r1], ones_b, out[r0:r1], fmt.params(),
                                      int(rnd), 0, k0, k1, k2, r, eoff + r0 * N, 0, p_ts, p_ro)  # fmt: skip
            return out, err
        # the wide integer accumulator
        base = (sa.lsb + sb.lsb + lo) if sa.bits and sb.bits else 0
        top = (sa.emax + sb.emax + 2 + hi + math.ceil(math.log2(n + 1))) if sa.bits and sb.bits \
            else 0  # fmt: skip
        if blocks:
            base = min(base, fmt.emin - fmt.mantissa_bits)
            top = max(top, fmt.emax + 2)
        nlimbs = (top - base) // 32 + 4
        nbk = -(-K // pl.block_k) if blocks else 1
        SA_ = np.ones((M, nbk)) if SA is None else SA
        SB_ = np.ones((nbk, N)) if SB is None else SB
        with threads_for(work):
            err = km.exact_dot(A, B, SA_, SB_, out, pl.block_k if blocks else max(K, 1), base,
                               nlimbs, fmt.params(), int(rnd), 0, k0, k1, k2, r, eoff, blocks)  # fmt: skip
        return out, err
    # rounded additions
    exact = _acc_span(acc, sa, sb, req.fma)
    addend_bits = (sa.bits + sb.bits) if req.fma else acc.precision
    need_ts, ro_ok = _fast_flags(acc, rnd, r, exact, addend_bits)
    p = acc.params()
    with threads_for(work):
        if pl.order == "sequential":
            err = km.sequential(A, B, out, p, int(rnd), 0, req.fma, k0, k1, k2, r, eoff, need_ts,
                                ro_ok)  # fmt: skip
        elif pl.order == "pairwise":
            prog = km.pairwise_program(K)
            depth = max(2, math.ceil(math.log2(max(K, 1))) + 2)
            err = km.pairwise(A, B, out, prog, depth, p, int(rnd), 0, req.fma, k0, k1, k2, r,
                              eoff, need_ts, ro_ok)  # fmt: skip
        else:
            nb = -(-K // pl.block_k)
            SA_ = np.ones((M, nb)) if SA is None else SA
            SB_ = np.ones((nb, N)) if SB is None else SB
            pp = pl.promote
            p_ts, p_ro = _fast_flags(pp, rnd, r, False, 53)
            n_add = K if req.fma else 2 * K
            err = km.blocked(A, B, SA_, SB_, out, pl.block_k, p, pp.params(), int(rnd), 0, 0,
                             req.fma, k0, k1, k2, r, eoff, need_ts, ro_ok, p_ts, p_ro, n_add)  # fmt: skip
    return out, err


def _as_2d(o: Operand, is_a: bool):
    """(values with a matrix shape, block scales with the same shape rule)."""
    v, s = o.values, o.scales
    if v.ndim == 1:
        v = v[None, :] if is_a else v[:, None]
        if s is not None:
            s = s[None, :] if is_a else s[:, None]
    return v, s


def compute(a: Operand, b: Operand, req: MatmulRequest) -> tuple[np.ndarray, Plan]:
    """The float64 result (``plan.out_shape``) of two NumPy operands, and the plan."""
    pl = plan(req, a, b, a.values.shape, b.values.shape)
    if req.model is not None:
        from qemu_arrays.routes import matmul_mma

        return matmul_mma.compute(a, b, req, pl), pl
    va, sa_ = _as_2d(a, True)
    vb, sb_ = _as_2d(b, False)
    sa, sb = stats(va), stats(vb)
    M, N = pl.M, pl.N
    batch = pl.batch
    res = np.empty((*batch, M, N))
    err = 0
    for idx in np.ndindex(*batch) if batch else [()]:
        ia = tuple(
            i if d > 1 else 0 for i, d in zip(idx[len(idx) - (va.ndim - 2) :], va.shape[:-2])
        )
        ib = tuple(
            i if d > 1 else 0 for i, d in zip(idx[len(idx) - (vb.ndim - 2) :], vb.shape[:-2])
        )
        A = np.ascontiguousarray(va[ia])
        B = np.ascontiguousarray(vb[ib])
        SA = None if sa_ is None else np.ascontiguousarray(sa_[ia])
        SB = None if sb_ is None else np.ascontiguousarray(sb_[ib])
        flat = int(np.ravel_multi_index(idx, batch)) if batch else 0
        out, e = _matmul2d(A, B, SA, SB, pl, req, sa, sb, flat * M * N)
        res[idx] = out
        err += e
    if err:
        raise nan_in_accumulator(pl.result if pl.acc is None else pl.acc)
    return res.reshape(pl.out_shape), pl


def _finish(res: np.ndarray, pl: Plan) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = res.astype(pl.out_dtype)
    return out


def run(a, b, req: MatmulRequest):
    """``matmul``/``dot`` of NumPy arrays, PyTorch CPU tensors or QArrays."""
    oa, ob = operand(a, "a"), operand(b, "b")
    res, pl = compute(oa, ob, req)
    out = _finish(res, pl)
    if _is_tensor(a) or _is_tensor(b):
        from qemu_arrays.routes.torch_cpu import to_torch

        return to_torch(out)
    return out
