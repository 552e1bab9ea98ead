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

import dataclasses
import math

import numpy as np

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.enums import Overflow, Rounding
from qemu_arrays.formats.spec import FloatFormat, IntFormat
from qemu_arrays.matmul_request import MatmulRequest
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import cpu
from qemu_arrays.routes.common import random_keys
from qemu_arrays.routes.cpu_elements import rne_plan
from qemu_arrays.routes.matmul_common import (
    FLOAT32,
    FLOAT64,
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


def _scaled_int(fmt: IntFormat, enc, name: str) -> Operand:
    """A QArray of a scaled integer format: the integers ``k - zero_point`` as values, and the
    scale: per tensor, per row of ``a`` or per column of ``b`` (for the epilogue), or per group
    along the reduction axis (applied to each group's exact sum, docs/matmul.md)."""
    codes = np.asarray(enc.codes)
    nd = codes.ndim
    red = nd - 1 if name == "a" or nd == 1 else nd - 2
    scales = np.asarray(enc.scales, dtype=np.float64)
    along_k = scales.ndim > 0 and scales.shape[red - nd + scales.ndim] > 1
    ones = np.ones_like(scales)
    req = Request(Op.DECODE, fmt, scale=ones, zero_point=enc.zero_points, axis=enc.axis,
                  block_size=enc.block_size, dtype=np.float64)  # fmt: skip
    vals = np.asarray(cpu.run(codes, req), dtype=np.float64)
    if enc.block_size is not None or along_k:
        full = np.broadcast_to(scales, (1,) * (nd - scales.ndim) + scales.shape)
        ax = None if enc.axis is None else enc.axis % nd
        if enc.block_size is not None:  # one scale per element, then one per group along k
            full = np.repeat(full, enc.block_size, axis=ax).take(range(codes.shape[ax]), axis=ax)
        full = np.broadcast_to(full, codes.shape)
        group = enc.block_size if enc.block_size is not None and ax == red else 1
        if group > 1:
            full = full.take(range(0, codes.shape[red], group), axis=red)
        return Operand(vals, fmt, False, scales=np.ascontiguousarray(full), axis=red,
                       group=group)  # fmt: skip
    if scales.ndim == 0 or scales.size == 1:
        sc = np.asarray(scales.reshape(()))
    else:
        full = np.broadcast_to(scales, (1,) * (nd - scales.ndim) + scales.shape)
        sc = np.take(full, 0, axis=red)
        sc = sc[..., :, None] if name == "a" else sc[..., None, :]
    return Operand(vals, fmt, False, scale=sc)


def _group_scales(o: Operand, is_a: bool, nb: int) -> np.ndarray | None:
    """The scales of one operand of a product with grouped integer scales, one per (row of
    ``a``, group) or (group, column of ``b``): its group scales, or its epilogue scale (per
    tensor, row or column) repeated over the groups; None for an unscaled operand."""
    if o.group is not None:
        return o.scales
    if o.scale is None:
        return None
    v = o.values
    if v.ndim == 1:
        shape: tuple[int, ...] = (nb,)
    else:
        shape = (*v.shape[:-1], nb) if is_a else (*v.shape[:-2], nb, v.shape[-1])
    return np.ascontiguousarray(np.broadcast_to(np.asarray(o.scale, np.float64), shape))


def _block(fmt: BlockFormat, enc, wide: bool) -> Operand:
    """A QArray of a block format: the element values, the block scales (applied to each
    block's partial sum, docs/matmul.md) and, for two-level formats (NVFP4), the float32
    per-tensor scale, applied in the epilogue as cuBLASLt's ``alpha``."""
    el = fmt.element
    if isinstance(el, FloatFormat):
        vals = _decode(enc.codes, el)
    else:
        k = np.asarray(enc.codes).astype(np.int64)
        k = np.where(k >> (el.bits - 1), k - (1 << el.bits), k)
        vals = k * 2.0**-fmt.element_fraction_bits
    scales = _decode(enc.scales, fmt.scale)
    axis = enc.axis if enc.axis is not None else vals.ndim - 1
    ts = None
    if fmt.tensor_scale:
        ts = np.asarray(np.float64(np.float32(enc.tensor_scale)))
    return Operand(vals, el, wide, block=fmt, scales=scales, axis=axis % vals.ndim, scale=ts)


def _epilogue(out: np.ndarray, a: Operand, b: Operand) -> np.ndarray:
    """``out * s`` with ``s = s_a * s_b`` (in float64) rounded to the output's dtype, one IEEE
    multiplication in that dtype (docs/matmul.md, "Scaled integer inputs")."""
    if a.scale is None and b.scale is None:
        return out
    one = np.float64(1.0)
    sa = one if a.scale is None else a.scale
    sb = one if b.scale is None else b.scale
    s = (np.asarray(sa) * np.asarray(sb)).astype(out.dtype)
    if out.ndim < s.ndim:  # 1-D operands: their scales are per tensor (0-d)
        s = s.reshape(())
    with np.errstate(all="ignore"):
        res = np.asarray(out * s, dtype=out.dtype)
    res[np.isnan(res)] = np.nan
    return res


def operand(x, name: str) -> Operand:
    """A NumPy array, PyTorch CPU tensor or QArray as an :class:`Operand` (float32 or float64
    values: 16-bit arrays widen to float32)."""
    proto = getattr(type(x), "__qemu_arrays_operand__", None)
    if proto is not None:
        fmt, enc = proto(x)
        wide = np.dtype(getattr(x, "dtype", np.float32)) == np.float64
        if isinstance(fmt, FloatFormat):
            return Operand(_decode(enc.codes, fmt), fmt, wide)
        if isinstance(fmt, BlockFormat):
            return _block(fmt, enc, wide)
        if isinstance(fmt, IntFormat):
            return _scaled_int(fmt, enc, name)
        msg = (
            f"{name} is a QArray of {fmt.name!r}: matmul takes QArrays of float element formats, "
            f"scaled integer formats and block formats (MX, NVFP4); hint: "
            f"matmul({name}.dequantize(), ...)"
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
    if arr.dtype == np.float64:
        _check_float32_values(arr, name)
        return Operand(arr, fmt, True)
    return Operand(arr.astype(np.float32, copy=False), fmt, False)


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


def _native_dtype(fmt: FloatFormat):
    """float32/float64 when ``fmt`` is IEEE binary32/binary64 itself (the CPU's arithmetic)."""
    for dt, ref in ((np.float32, FLOAT32), (np.float64, FLOAT64)):
        if fmt == ref:
            return np.dtype(dt)
    return None


def _native(A, B, pl: Plan, req, dtype) -> np.ndarray:
    """The CPU's own IEEE arithmetic (accumulator binary32/binary64, nearest-even)."""
    from qemu_arrays.kernels import matmul as km

    An = np.ascontiguousarray(A, dtype=dtype)
    Bn = np.ascontiguousarray(B, dtype=dtype)
    o = np.empty((A.shape[0], B.shape[1]), dtype=dtype)
    if pl.order == "blocked":
        km.blocked_native(An, Bn, o, pl.block_k, req.fma)
    else:
        km.sequential_native(An, Bn, o, req.fma)
    o[np.isnan(o)] = np.nan  # the canonical NaN
    return o


def _rne32(A, B, SA, SB, pl: Plan, req, sa: Stats, sb: Stats):
    """Nearest-even into a narrow accumulator on float32 words (``rne32``), when it is exact:
    products exact in float32, float32 sums exact or rounding innocuously (docs/matmul.md);
    promotions (if any) native float32. ``(out, errors)`` or None when it does not apply."""
    from qemu_arrays.kernels import matmul as km

    acc = pl.acc
    plan = rne_plan(acc, Overflow.OWN)
    if plan is None:
        return None
    blocks = pl.order == "blocked"
    if blocks and (pl.promote != FLOAT32 or SA is not None or SB is not None):
        return None
    if (
        sa.bits
        and sb.bits
        and (sa.bits + sb.bits > 24 or sa.lsb + sb.lsb < -149 or sa.emax + sb.emax + 2 > 127)
    ):
        return None
    p = acc.precision
    bottom, top = acc.emin - acc.mantissa_bits, acc.emax + 2
    if req.fma and sa.bits and sb.bits:
        bottom, top = min(bottom, sa.lsb + sb.lsb), max(top, sa.emax + sb.emax + 3)
    addend = (sa.bits + sb.bits) if req.fma else p
    if not (top - bottom <= 24 or (addend <= p and 2 * p + 1 <= 24)):
        return None
    M, N = A.shape[0], B.shape[1]
    o = np.empty((M, N), dtype=np.float32)
    km.sequential_rne32(A.astype(np.float32), B.astype(np.float32), o, plan, req.fma,
                        pl.block_k, blocks)  # fmt: skip
    nan = np.isnan(o)
    o[nan] = np.nan  # the canonical NaN (an x86 inf - inf in the promotion is negative)
    err = int(nan.any()) if not acc.has_nan else 0
    return o.astype(np.float64), err


def _products32(sa: Stats, sb: Stats) -> bool:
    """Whether every product of the data is exact in float32 (normal or subnormal)."""
    if not (sa.bits and sb.bits):
        return True
    return sa.bits + sb.bits <= 24 and sa.lsb + sb.lsb >= -149 and sa.emax + sb.emax + 2 <= 127


def _sel32(A, B, SA, SB, pl: Plan, req, sa: Stats, sb: Stats, k, eoff: int):
    """Per-addition rounding on float32 words (``kernels/matmul_sel32.py``): nearest-even,
    toward zero, up, down and stochastic into a narrow accumulator where every product is
    exact in float32 and rounding to odd at 24 bits keeps the format's rounding
    (``formats/add32.py``); promotions (blocked) only native float32 nearest-even.
    ``(out, errors)`` or None when it does not apply."""
    from qemu_arrays.formats.add32 import sel32_consts, sel32_ok
    from qemu_arrays.kernels.matmul_sel32 import sequential_sel32

    acc, rnd, r = pl.acc, int(req.rounding), pl.r
    blocks = pl.order == "blocked"
    if pl.order not in ("sequential", "blocked") or not sel32_ok(acc.precision, rnd, r):
        return None
    if blocks and (pl.promote != FLOAT32 or rnd != int(Rounding.NEAREST_EVEN) or SA is not None
                   or SB is not None):  # fmt: skip
        return None
    if not _products32(sa, sb):
        return None
    c = sel32_consts(acc.params())
    if c is None:
        return None
    o = np.empty((A.shape[0], B.shape[1]), dtype=np.float32)
    err = sequential_sel32(A.astype(np.float32), B.astype(np.float32), o, acc.params(), c, rnd,
                           req.fma, *k, r, eoff, pl.block_k, blocks)  # fmt: skip
    return o.astype(np.float64), err


def _check_group_sums(sa: Stats, sb: Stats, pl: Plan) -> bool:
    """Grouped integer scales: every partial sum of a group must be exact in the accumulator
    (then its rounding changes nothing: the integer hardware's exact sum), and a group's sum
    times a float32 scale product exact in float64 (the sum spans at most 29 bits). Returns
    whether the sums are exact in float32 (sgemm)."""
    bk = pl.block_k
    span = sum_span(sa, sb, bk)
    top = math.ceil(math.log2(max(bk, 1))) + sa.emax + sb.emax + 2  # |sum| < 2**top
    if not (sa.finite and sb.finite):
        msg = (
            "an operand holds NaN or inf: grouped integer scales are applied to exact group "
            "sums of finite values; hint: filter the inputs, or matmul(a.dequantize(), ...)"
        )
        raise ValueError(msg)
    if span > 29:
        msg = (
            f"the sums of groups of {bk} span {span} bits; matmul applies grouped integer "
            "scales to group sums of at most 29 bits (their product with a float32 scale is "
            "then exact in float64); hint: smaller groups (block_size), or "
            "matmul(a.dequantize(), ...)"
        )
        raise NotImplementedError(msg)
    acc = pl.acc
    if (
        acc is not None
        and sa.bits
        and sb.bits
        and not (
            span <= acc.precision
            and 2.0**top <= acc.max
            and sa.lsb + sb.lsb >= acc.emin - acc.mantissa_bits
        )
    ):
        msg = (
            f"accumulator={acc.name!r} cannot hold the sums of these groups exactly (they span "
            f"{span} bits, below 2**{top}); integer hardware sums a group exactly; hint: "
            "accumulator=None"
        )
        raise ValueError(msg)
    return span <= 24 and sa.lsb + sb.lsb >= -149 and top < 120


#: the bytes of one row panel of block partials (measured best among 1-16 MiB on this CPU; the
#: partials and totals of a panel stay in the L2/L3 caches while its blocks are added in)
_PANEL_BYTES = 4 << 20


def _exact_blocks(A, B, SA, SB, out, fmt, bk: int, use32: bool, req, r: int, eoff: int,
                  scale32: bool = False) -> tuple:  # fmt: skip
    """``order="blocked"`` with exact partial sums that fit in the BLAS product's precision (53
    bits, 24 for sgemm): one BLAS product per block and row panel, each partial promoted into
    ``fmt`` at once (row panels keep the partials and the totals in the cache). Unscaled float32
    partials promoted into float32 under nearest-even are one IEEE float32 addition (both
    addends are float32 values: the CPU rounds their exact sum); else the promotion kernels.
    ``scale32`` (grouped integer scales): each block's scale is ``fl32(SA[i, t] * SB[t, j])``
    (the product in float64, rounded to float32), and the partial times it is exact in float64
    (the caller checked ``|partial| < 2**29``). Returns (out, NaN-error count)."""
    from qemu_arrays.kernels import matmul as km

    M, K = A.shape
    N = B.shape[1]
    rnd = req.rounding
    k0, k1, k2 = _keys(req)
    nb = -(-K // bk)
    SA_ = np.ones((M, nb)) if SA is None else SA
    SB_ = np.ones((nb, N)) if SB is None else SB
    native32 = fmt == FLOAT32 and rnd is Rounding.NEAREST_EVEN
    plain32 = native32 and use32 and SA is None and SB is None
    if scale32:
        ones_a, ones_b = np.ones((M, nb)), np.ones((nb, N))
    tot32 = np.zeros((M, N), np.float32) if native32 else None
    p_ts, p_ro = _fast_flags(fmt, rnd, r, False, 53)
    dt = np.float32 if use32 else np.float64
    An, Bn = A.astype(dt, copy=False), B.astype(dt, copy=False)
    rows = max(1, min(M, _PANEL_BYTES // (np.dtype(dt).itemsize * max(N, 1))))
    P = np.empty((1, rows, N), dtype=dt)
    err = 0
    for i0 in range(0, M, rows):
        i1 = min(M, i0 + rows)
        Pp = P[:, : i1 - i0]
        for t in range(nb):
            np.matmul(An[i0:i1, t * bk : (t + 1) * bk], Bn[t * bk : (t + 1) * bk], out=Pp[0])
            if scale32:
                S = (SA_[i0:i1, t, None] * SB_[t]).astype(np.float32).astype(np.float64)
                X = (Pp[0] * S)[None]  # exact
                if native32:
                    km.promote_native32(X, ones_a[i0:i1, :1], ones_b[:1], tot32[i0:i1])
                else:
                    err += km.promote(X, ones_a[i0:i1], ones_b, out[i0:i1], fmt.params(),
                                      int(rnd), 0, k0, k1, k2, r, eoff + i0 * N, t, p_ts,
                                      p_ro)  # fmt: skip
            elif plain32:
                np.add(tot32[i0:i1], Pp[0], out=tot32[i0:i1])
            elif native32:
                km.promote_native32(Pp, SA_[i0:i1, t : t + 1].copy(), SB_[t : t + 1], tot32[i0:i1])
            else:
                err += km.promote(Pp, SA_[i0:i1], SB_, out[i0:i1], fmt.params(), int(rnd), 0, k0,
                                  k1, k2, r, eoff + i0 * N, t, p_ts, p_ro)  # fmt: skip
    if native32:
        tot32[np.isnan(tot32)] = np.nan  # the canonical NaN
        return tot32, 0
    return out, err


def _matmul2d(A, B, SA, SB, pl: Plan, req, get_stats, eoff: int, groups: bool = False) -> tuple:
    """One 2-D product: (out float64 M x N, NaN-error count). ``groups``: SA and SB are grouped
    integer scales (their product is rounded to float32 before it scales a group's sum)."""
    from qemu_arrays.kernels import matmul as km

    if groups:
        A = np.ascontiguousarray(A, dtype=np.float64)
        B = np.ascontiguousarray(B, dtype=np.float64)
        use32 = _check_group_sums(*get_stats(), pl)
        out = np.zeros((A.shape[0], B.shape[1]))
        return _exact_blocks(A, B, SA, SB, out, pl.promote, pl.block_k, use32, req, pl.r, eoff,
                             scale32=True)  # fmt: skip

    native = _native_dtype(pl.acc) if req.rounding is Rounding.NEAREST_EVEN else None
    if native is not None and (
        pl.order == "sequential"
        or (pl.order == "blocked" and pl.promote == pl.acc and SA is None and SB is None)
    ):
        return _native(A, B, pl, req, native), 0
    A = np.ascontiguousarray(A, dtype=np.float64)
    B = np.ascontiguousarray(B, dtype=np.float64)
    sa, sb = get_stats()
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N))
    rnd = req.rounding
    k0, k1, k2 = _keys(req)
    r = pl.r
    acc = pl.acc
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
                err = km.round_exact(X, out, fmt.params(), int(rnd), 0, k0, k1, k2, r, eoff, 0)
                return out, err
            return _exact_blocks(A, B, SA, SB, out, fmt, pl.block_k, use32, req, r, eoff)
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
        err = km.exact_dot(A, B, SA_, SB_, out, pl.block_k if blocks else max(K, 1), base,
                           nlimbs, fmt.params(), int(rnd), 0, k0, k1, k2, r, eoff, blocks)  # fmt: skip
        return out, err
    # rounded additions
    if rnd is Rounding.NEAREST_EVEN and pl.order in ("sequential", "blocked"):
        o = _rne32(A, B, SA, SB, pl, req, sa, sb)
        if o is not None:
            return o
    o = _sel32(A, B, SA, SB, pl, req, sa, sb, (k0, k1, k2), eoff)
    if o is not None:
        return o
    exact = _acc_span(acc, sa, sb, req.fma)
    addend_bits = (sa.bits + sb.bits) if req.fma else acc.precision
    need_ts, ro_ok = _fast_flags(acc, rnd, r, exact, addend_bits)
    p = acc.params()
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
    """The result (``plan.out_shape``, ``plan.out_dtype``: every value of the result format is
    exact in it) of two NumPy operands, and the plan."""
    pl = plan(req, a, b, a.values.shape, b.values.shape)
    if req.model is not None:
        from qemu_arrays.routes import matmul_mma

        return matmul_mma.compute(a, b, req, pl), pl
    groups = a.group is not None or b.group is not None
    if groups:  # every scale enters at the promotion of a group (docs/matmul.md)
        nb = -(-pl.K // pl.block_k)
        a = dataclasses.replace(a, scales=_group_scales(a, True, nb), scale=None)
        b = dataclasses.replace(b, scales=_group_scales(b, False, nb), scale=None)
    va, sa_ = _as_2d(a, True)
    vb, sb_ = _as_2d(b, False)
    cache: list = []

    def get_stats():
        if not cache:
            cache.append((stats(va), stats(vb)))
        return cache[0]

    M, N = pl.M, pl.N
    batch = pl.batch
    res = np.empty((*batch, M, N), dtype=pl.out_dtype)
    err = 0
    for idx in np.ndindex(*batch) if batch else [()]:
        ia = tuple(
            i if d > 1 else 0 for i, d in zip(idx[len(idx) - (va.ndim - 2) :], va.shape[:-2])
        )
        ib = tuple(
            i if d > 1 else 0 for i, d in zip(idx[len(idx) - (vb.ndim - 2) :], vb.shape[:-2])
        )
        A = va[ia]
        B = vb[ib]
        SA = None if sa_ is None else np.ascontiguousarray(sa_[ia])
        SB = None if sb_ is None else np.ascontiguousarray(sb_[ib])
        flat = int(np.ravel_multi_index(idx, batch)) if batch else 0
        out, e = _matmul2d(A, B, SA, SB, pl, req, get_stats, flat * M * N, groups)
        res[idx] = out
        err += e
    if err:
        raise nan_in_accumulator(pl.result if pl.acc is None else pl.acc)
    return _epilogue(res, a, b).reshape(pl.out_shape), pl


def run(a, b, req: MatmulRequest):
    """``matmul``/``dot`` of NumPy arrays, PyTorch CPU tensors or QArrays."""
    oa, ob = operand(a, "a"), operand(b, "b")
    out, _ = compute(oa, ob, req)
    if _is_tensor(a) or _is_tensor(b):
        from qemu_arrays.routes.torch_cpu import to_torch

        return to_torch(out)
    return out
