"""Scaled float and integer formats on the generic route (JAX, also under ``jax.jit``, ``grad``
and ``vmap``; any array-API namespace), bit for bit as the NumPy route (docs/scaled.md).

A scaled float format computes, in float32 (float64 for float64 input): the quotient
``x / s`` correctly rounded, that quotient rounded into the format (saturating), and the product
``Q * s`` correctly rounded. XLA flushes float32 subnormals to zero on the CPU, so the float32
steps are not left to the namespace's arithmetic: the quotient and the product are computed on
the fields ``(sign, M, E)`` of the operands (value ``M * 2^E``), with one float32 division of
two significands in ``[1, 2)`` (never subnormal) and integer arithmetic on 24-bit words, and are
rounded to float32 (subnormals included) by the same element-wise core as every other rounding
of this route. So are the scales (``float32(amax / max)``, then the scale format).

Integer formats with per-channel/group scales, array scales or the ``"absmax"`` rule take the
float64 quotient of docs/formats.md where the namespace has 64-bit types (JAX: ``x64``); in
JAX's 32-bit mode only power-of-two scales (a scale format without mantissa bits, such as E8M0)
give that quotient exactly, and they are computed on the fields too.

The group geometry (per tensor, per channel, groups of ``block_size``) is a view of the array
with the groups along its last axis, padded with zeros; the random bits of stochastic rounding
are drawn in the C order of the original array, whatever the view.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import generic as g
from qemu_arrays.routes.generic import _INF, _NAN, _Fields, _Ops

__all__ = [
    "F32",
    "View",
    "div_f32",
    "fields_of",
    "mul_f32",
    "narrow",
    "norm_fields",
    "run",
    "value_fields",
]

F32 = get_format("float32").params()
_M24 = (1 << 24) - 1


# ---- fields ----------------------------------------------------------------------------------


def fields_of(o: _Ops, b, in_e, in_m) -> _Fields:
    """The IEEE fields of bits ``b`` with subnormals normalised (``M`` has bit ``in_m`` set for
    every finite non-zero value)."""
    return norm_fields(o, g._fields(o, b, in_e, in_m), in_m)


def norm_fields(o: _Ops, f: _Fields, in_m) -> _Fields:
    xp = o.xp
    bl = o.bit_length(f.M)
    sh = xp.where(f.is_zero | f.is_nan | f.is_inf, o.i(0), (in_m + 1) - bl)
    return f._replace(M=o.shl(f.M, sh), E=f.E - sh)


def value_fields(o: _Ops, status, sign, kept, q) -> _Fields:
    """A rounded result ``(status, sign, kept, q)`` as input fields of a further rounding."""
    xp = o.xp
    nan = status >= _NAN
    inf = status == _INF
    zero = (kept == o.u(0)) & ~nan & ~inf
    z = xp.zeros_like(q)
    return _Fields(sign, z, z, kept, q, nan, inf, zero)


def _const_fields(o: _Ops, like, value: float) -> _Fields:
    """Normalised float32 fields of a positive constant, shaped like ``like``."""
    xp = o.xp
    b = int(np.float32(value).view(np.uint32))
    return fields_of(o, xp.full_like(like, b, dtype=o.U), 8, 23)


def _mul48(o: _Ops, a, b):
    """``a * b`` for words below 2**24 as ``(hi, lo)``, base 2**24 (12-bit limbs)."""
    m12 = o.u(0xFFF)
    a1, a0 = a >> 12, a & m12
    b1, b0 = b >> 12, b & m12
    mid = a1 * b0 + a0 * b1
    lo_full = a0 * b0 + ((mid & m12) << 12)
    lo = lo_full & o.u(_M24)
    hi = a1 * b1 + (mid >> 12) + (lo_full >> 24)
    return hi, lo


def _round_f32(o: _Ops, f: _Fields, in_m):
    """Round fields ``f`` (``M`` of at most ``in_m + 1`` bits) to float32, nearest-even,
    subnormals kept, overflow to inf: ``(status, sign, kept, q)``."""
    return g._round_bits(o, f.M, 8, in_m, F32, Rounding.NEAREST_EVEN, Overflow.OWN, None, 32, f=f)


def div_f32(o: _Ops, xf: _Fields, sf: _Fields):
    """The float32 quotient ``x / s`` (IEEE: correctly rounded, subnormals kept, overflow to
    inf) for normalised float32 fields ``xf`` and ``sf`` (``s`` finite and positive), as
    ``(status, sign, kept, q)``.

    With ``X = Mx 2^(23 - e0) / Ms`` in ``[2^23, 2^24)`` (``e0`` is 0 when ``Mx >= Ms``, else
    -1), a float32 division of the significands gives an estimate ``Mq`` of ``X`` (the
    namespace's division need not be correctly rounded: XLA divides by a scalar through its
    reciprocal); ``D = Mx 2^(23 - e0) - Mq Ms`` is then exact in integers (a 48-bit product),
    ``floor(2 X) = 2 Mq + floor(2 D / Ms)`` and the remainder gives a sticky bit: the quotient
    known to half a unit plus a sticky bit rounds at any precision as the exact one does."""
    xp = o.xp
    one = o.u(127 << 23)
    mx, ms = xf.M, sf.M
    xs = g.bitcast(one | (mx & o.u(0x7FFFFF)), xp.float32, xp)
    ss = g.bitcast(one | (ms & o.u(0x7FFFFF)), xp.float32, xp)
    qb = g.bitcast(xs / ss, xp.uint32, xp)
    e_est = o.to_i((qb >> 23) & o.u(0xFF)) - 127
    top = mx >= ms
    e0 = xp.where(top, o.i(0), o.i(-1))
    m_est = (qb & o.u(0x7FFFFF)) | o.u(1 << 23)
    mq = xp.where(e_est >= e0, o.shl(m_est, e_est - e0), o.shr(m_est, e0 - e_est))
    phi, plo = _mul48(o, mq, ms)
    rhi = xp.where(top, mx >> 1, mx)
    rlo = xp.where(top, (mx & o.u(1)) << 23, o.u(0))
    d = (o.to_i(rhi) - o.to_i(phi)) * (1 << 24) + (o.to_i(rlo) - o.to_i(plo))
    msi = xp.where(xf.is_zero | xf.is_nan | xf.is_inf, o.i(1), o.to_i(ms))
    d2 = 2 * d
    c = xp.floor_divide(d2, msi)
    sticky = (d2 - c * msi) != o.i(0)
    t = o.to_i(mq) * 2 + c  # floor(2 X)
    M = (xp.astype(t, o.U) << 1) | xp.astype(sticky, o.U)
    E = e0 - 25 + (xf.E - sf.E)
    f = xf._replace(M=xp.where(xf.is_zero | xf.is_nan | xf.is_inf, o.u(0), M), E=E)
    return _round_f32(o, f, 25)


def mul_f32(o: _Ops, sign, kept, q, sf: _Fields, nan=None):
    """The float32 product ``(-1)^sign kept 2^q * s`` correctly rounded (subnormals kept,
    overflow to inf), ``kept`` below 2**24 and ``sf`` normalised float32 fields of ``s > 0``;
    ``nan`` marks NaN results. Returns ``(status, sign, kept, q)``."""
    xp = o.xp
    hi, lo = _mul48(o, kept, sf.M)
    L = o.bit_length(hi)
    big = L > 0
    # hi > 0: the 31 top bits of hi * 2^24 + lo, the rest as a sticky bit
    sh_up = 31 - L
    part = xp.where(L >= 7, o.shr(lo, L - 7), o.shl(lo, 7 - L))
    sticky = xp.where(L >= 7, lo & (o.shl(o.u(1), L - 7) - o.u(1)), o.u(0)) != o.u(0)
    w_big = o.shl(hi, sh_up) | part | xp.astype(sticky, o.U)
    M = xp.where(big, w_big, lo)
    E = xp.where(big, q + sf.E + L - 7, q + sf.E)
    zero = kept == o.u(0)
    isnan = xp.zeros_like(zero) if nan is None else nan
    f = _Fields(sign, E * 0, E * 0, xp.where(isnan, o.u(0), M), E, isnan,
                xp.zeros_like(zero), zero & ~isnan)  # fmt: skip
    return _round_f32(o, f, 30)


def narrow(xp, vals, dtype):
    """``vals`` (float32/float64) rounded once to ``dtype`` by the route's own rounding, in
    their shape."""
    return xp.reshape(g._narrow(xp, vals, dtype), vals.shape)


def f32_bits(o: _Ops, status, sign, kept, q):
    """float32 bit patterns (uint32) of rounded float32 results."""
    return g._ieee_bits(o, status, sign, kept, q, 8, 23)


# ---- the group view ------------------------------------------------------------------------------


class View(NamedTuple):
    """The group geometry of an array: ``fwd`` moves the group axis last and (for groups of
    ``block_size``) pads it with zeros and splits it as ``(..., groups, block_size)``; ``back``
    undoes it; ``reduce`` gives one value per group in the view's broadcasting shape."""

    xp: object
    shape: tuple
    axis: int | None
    block_size: int | None

    @property
    def padded(self) -> int:
        n = self.shape[self.axis]
        return -(-n // self.block_size) * self.block_size - n

    def fwd(self, a):
        xp, axis, bs = self.xp, self.axis, self.block_size
        if axis is None or bs is None:
            return a
        a = xp.moveaxis(a, axis, -1)
        if self.padded:
            pad = xp.zeros((*a.shape[:-1], self.padded), dtype=a.dtype)
            a = xp.concat([a, pad], axis=-1)
        return xp.reshape(a, (*a.shape[:-1], a.shape[-1] // bs, bs))

    def back(self, a):
        xp, axis, bs = self.xp, self.axis, self.block_size
        if axis is None or bs is None:
            return a
        a = xp.reshape(a, (*a.shape[:-2], a.shape[-2] * bs))
        if self.padded:
            a = a[..., : self.shape[axis]]
        return xp.moveaxis(a, -1, axis)

    def reduce_max(self, a):
        """The maximum of each group (in the view), keeping dimensions for broadcasting."""
        xp, axis, bs = self.xp, self.axis, self.block_size
        if axis is None:
            return xp.max(a) if len(a.shape) else a
        if bs is None:
            others = tuple(d for d in range(len(a.shape)) if d != axis)
            return xp.max(a, axis=others, keepdims=True) if others else a
        return xp.max(a, axis=-1, keepdims=True)

    def to_groups(self, a):
        """A per-group array of the view (``reduce_max``'s shape) in the group shape of
        docs/scaled.md (what ``encode`` returns)."""
        xp, axis, bs = self.xp, self.axis, self.block_size
        if axis is None or bs is None:
            return a
        return xp.moveaxis(a[..., 0], -1, axis)

    def from_groups(self, a):
        """A group-shaped array (scales per tensor/channel/group) in the view's shape."""
        xp, axis, bs = self.xp, self.axis, self.block_size
        if axis is None or bs is None or len(a.shape) == 0:
            return a
        return xp.moveaxis(a, axis, -1)[..., None]


def _granularity(shape, req: Request):
    from qemu_arrays.validation import check_granularity

    return check_granularity(shape, req.axis, req.block_size)


def _random_u(xp, view: View, n, req: Request, r, W, keys, device):
    if req.rounding != Rounding.STOCHASTIC:
        return None
    seed = req.seed if keys is None and isinstance(req.seed, numbers.Integral) else 0
    if keys is None:
        keys = g.seed_keys(xp, req.seed, req.stream)
    u = g.random_u(xp, n, seed or 0, req.stream, req.offset, r, W, device, keys)
    return view.fwd(xp.reshape(u, view.shape))


def _given_scale(xp, scale, dtype, view: View, name="scale"):
    """A given scale (number or array of any namespace, traced too) as an array of ``dtype``
    in the view's shape, from the group shape (or one value per channel). Concrete arrays are
    checked finite and positive (a traced one cannot be: a scale <= 0 gives NaN)."""
    if isinstance(scale, numbers.Real):
        v = float(np.float32(scale)) if dtype == xp.float32 else float(scale)
        return xp.asarray(v, dtype=dtype)
    if not g._is_tracing(scale):
        host = np.asarray(scale, dtype=np.float64)
        if not np.all(np.isfinite(host)) or np.any(host <= 0):
            msg = f"{name} must be finite and > 0, got {scale!r}"
            raise ValueError(msg)
        if dtype == xp.float32 and np.any(host.astype(np.float32) <= 0):
            msg = f"{name} must be a positive float32 value, got {scale!r}"
            raise ValueError(msg)
        s = xp.asarray(host.astype(np.float32 if dtype == xp.float32 else np.float64))
    else:
        s = xp.astype(scale, dtype)
    nd = len(view.shape)
    if view.axis is not None and len(s.shape) == 1 and nd > 1 and view.block_size is None:
        if s.shape[0] != view.shape[view.axis]:
            msg = (
                f"{name} of shape {tuple(s.shape)} does not fit the {view.shape[view.axis]} "
                f"channels along axis {view.axis}; hint: one value per channel"
            )
            raise ValueError(msg)
        s = xp.reshape(s, tuple(-1 if d == view.axis else 1 for d in range(nd)))
    return view.from_groups(s)


# ---- entry -----------------------------------------------------------------------------------


def run(xp, x, req: Request, keys=None):
    """``quantize``/``encode`` of a scaled float or integer format on array ``x`` of ``xp``."""
    if req.op is Op.DECODE:
        msg = (
            f"decode with scales of {req.fmt.name!r} is not available on the generic route; "
            "hint: decode on NumPy (qemu_arrays.decode(np.asarray(codes), fmt, scale=...))"
        )
        raise NotImplementedError(msg)
    if req.scale_rule not in (None, "absmax"):
        msg = (
            f"scale={req.scale!r} is not available on the generic route (it takes 'absmax' and "
            "given scales); hint: compute the scales with qemu_arrays.compute_scale on NumPy "
            "and pass them as scale="
        )
        raise NotImplementedError(msg)
    if isinstance(req.fmt, FloatFormat):
        return _scaled_float(xp, x, req, keys)
    return _scaled_int(xp, x, req, keys)


def _work(xp, x, req: Request):
    """(work array, W, in_e, in_m, r): float32 for 16/32-bit input, float64 for float64."""
    work, in_e, in_m, W, r = g._plan(xp, x, req.fmt, req.random_bits, g._via_float32(req))
    return work, W, in_e, in_m, r


def _scale_format_round(o: _Ops, status, sign, kept, q, sfmt, in_m):
    """Positive float32 scale fields rounded into ``sfmt`` (nearest-even, saturating, never
    zero: a scale rounding to zero becomes ``sfmt``'s smallest positive value), returned as
    float32 results ``(status, sign, kept, q)`` (every value of ``sfmt`` is a float32)."""
    xp = o.xp
    f = value_fields(o, status, sign, kept, q)
    st, sg, k, qq = g._round_bits(o, kept, 8, in_m, sfmt.params(), Rounding.NEAREST_EVEN,
                                  Overflow.SATURATE, None, 32, f=f)  # fmt: skip
    tiny = float(np.float32(sfmt.smallest_subnormal if sfmt.has_zero else sfmt.min))
    tf = _const_fields(o, k, tiny)
    zero = k == o.u(0)
    st2, _sg, k2, q2 = _round_f32(o, value_fields(o, st, sg, k, qq), 24)
    return st2, xp.zeros_like(k2), xp.where(zero, tf.M, k2), xp.where(zero, tf.E, q2)


def float32_scales(o: _Ops, amax_f: _Fields, fmt, sfmt):
    """Normalised float32 fields of ``s = float32(amax / fmt.max)`` (then ``sfmt``) from the
    fields of the group maxima: docs/scaled.md (1 for a group without a finite non-zero value,
    the smallest float32 for a quotient that rounds to zero, float32 max beyond)."""
    xp = o.xp
    mf = _const_fields(o, amax_f.M, float(fmt.max)) if float(np.float32(fmt.max)) == fmt.max \
        else None  # fmt: skip
    if mf is None:
        msg = f"the largest value of {fmt.name!r} is not a float32 value; no float32 scale rule"
        raise ValueError(msg)
    st, _sg, k, q = div_f32(o, amax_f, mf)
    valid = ~amax_f.is_zero
    ones = _const_fields(o, amax_f.M, 1.0)
    tiny = _const_fields(o, amax_f.M, float(np.finfo(np.float32).smallest_subnormal))
    big = _const_fields(o, amax_f.M, float(np.finfo(np.float32).max))
    k = xp.where(valid, k, ones.M)
    q = xp.where(valid, q, ones.E)
    z = k == o.u(0)
    k = xp.where(z, tiny.M, k)
    q = xp.where(z, tiny.E, q)
    inf = (st == _INF) & valid
    k = xp.where(inf, big.M, k)
    q = xp.where(inf, big.E, q)
    st = xp.zeros_like(st)
    sign = xp.zeros_like(k)
    if sfmt is not None:
        st, sign, k, q = _scale_format_round(o, st, sign, k, q, sfmt, 23)
    b = f32_bits(o, st, sign, k, q)
    return fields_of(o, b, 8, 23), b


def _amax_bits(o: _Ops, view: View, b, in_e, in_m):
    """The magnitude bits of the largest finite magnitude of each group (0 if none)."""
    mag = b & o.u((1 << (in_e + in_m)) - 1)
    inf = o.u(((1 << in_e) - 1) << in_m)
    mag = o.xp.where(mag >= inf, o.u(0), mag)
    return view.reduce_max(mag)


def _scaled_float(xp, x, req: Request, keys):
    fmt = req.fmt
    work, W, in_e, in_m, r = _work(xp, x, req)
    shape = tuple(work.shape)
    axis, bs = _granularity(shape, req)
    view = View(xp, shape, axis, bs)
    o = _Ops(xp, W)
    dev = getattr(x, "device", None)
    n = g._size(work)
    u = _random_u(xp, view, n, req, r, W, keys, dev)
    wv = view.fwd(work)
    if in_e == 11:
        return _scaled_float64(xp, x, req, o, view, wv, u, r)
    b = g.bitcast(wv, xp.uint32, xp)
    if isinstance(req.scale, str):
        amax_b = _amax_bits(o, view, b, 8, 23)
        sf, sbits = float32_scales(o, fields_of(o, amax_b, 8, 23), fmt, req.scale_format)
    else:
        s = _given_scale(xp, req.scale, xp.float32, view)
        sb = g.bitcast(s, xp.uint32, xp)
        if req.scale_format is not None:
            f0 = fields_of(o, sb, 8, 23)
            st, sg, k, q = _scale_format_round(o, xp.zeros_like(f0.E), f0.sign, f0.M, f0.E,
                                               req.scale_format, 23)  # fmt: skip
            sb = f32_bits(o, st, sg, k, q)
        sbits = sb
        sf = fields_of(o, sb, 8, 23)
    sf = _broadcast_fields(xp, sf, b)
    xf = fields_of(o, b, 8, 23)
    q1 = div_f32(o, xf, sf)  # the float32 quotient
    st, sg, k, q = g._round_bits(o, b, 8, 23, fmt.params(), req.rounding, Overflow.SATURATE, u,
                                 r, f=value_fields(o, *q1))  # fmt: skip
    g._raise_if_error(xp, st == g._ERR, fmt, Overflow.SATURATE)
    if req.op is Op.ENCODE:
        codes = g._format_code(o, st, sg, k, q, fmt.params())
        codes = xp.astype(view.back(codes), g._code_dtype(xp, fmt.bits))
        if not req.scaled:
            return codes
        scales = view.to_groups(g.bitcast(sbits, xp.float32, xp))
        return Encoded(codes, scales, None, None, axis, bs)
    pst, psg, pk, pq = mul_f32(o, sg, k, q, sf, nan=st >= _NAN)
    vals = g.bitcast(f32_bits(o, pst, psg, pk, pq), xp.float32, xp)
    return narrow(xp, view.back(vals), x.dtype)


def _broadcast_fields(xp, f: _Fields, like) -> _Fields:
    return _Fields(*(xp.broadcast_to(a, like.shape) for a in f))


def _scaled_float64(xp, x, req: Request, o: _Ops, view: View, wv, u, r):
    """float64 work (JAX with x64): the same steps with the namespace's float64 arithmetic (on
    XLA's CPU a float64 subnormal quotient or product, below 2**-1022, is flushed to zero)."""
    fmt = req.fmt
    f64 = xp.float64
    if isinstance(req.scale, str):
        b = g.bitcast(wv, xp.uint64, xp)
        amax = g.bitcast(_amax_bits(o, view, b, 11, 52), f64, xp)
        s = xp.astype(g.exact_div(xp, amax, xp.asarray(float(fmt.max), dtype=f64)), xp.float32)
        s = xp.where(amax > 0, s, xp.asarray(1.0, dtype=xp.float32))
        s = xp.where(s > 0, s, xp.asarray(float(np.finfo(np.float32).smallest_subnormal),
                                          dtype=xp.float32))  # fmt: skip
        s = xp.where(xp.isfinite(s), s, xp.asarray(float(np.finfo(np.float32).max),
                                                    dtype=xp.float32))  # fmt: skip
    else:
        s = _given_scale(xp, req.scale, xp.float32, view)
    if req.scale_format is not None:
        o32 = _Ops(xp, 32)
        sb = g.bitcast(xp.asarray(s, dtype=xp.float32), xp.uint32, xp)
        f0 = fields_of(o32, sb, 8, 23)
        st, sg, k, q = _scale_format_round(o32, xp.zeros_like(f0.E), f0.sign, f0.M, f0.E,
                                           req.scale_format, 23)  # fmt: skip
        s = g.bitcast(f32_bits(o32, st, sg, k, q), xp.float32, xp)
    s64 = xp.astype(s, f64)
    qv = g.exact_div(xp, wv, s64)
    qb = g.bitcast(qv, xp.uint64, xp)
    st, sg, k, q = g._round_bits(o, qb, 11, 52, fmt.params(), req.rounding, Overflow.SATURATE, u,
                                 r)  # fmt: skip
    g._raise_if_error(xp, st == g._ERR, fmt, Overflow.SATURATE)
    if req.op is Op.ENCODE:
        codes = g._format_code(o, st, sg, k, q, fmt.params())
        codes = xp.astype(view.back(codes), g._code_dtype(xp, fmt.bits))
        if not req.scaled:
            return codes
        return Encoded(codes, view.to_groups(xp.broadcast_to(s, s.shape)), None, None,
                       view.axis, view.block_size)  # fmt: skip
    ev = g.bitcast(g._ieee_bits(o, st, sg, k, q, 11, 52), f64, xp)
    return narrow(xp, view.back(ev * s64), x.dtype)


# ---- integer formats ---------------------------------------------------------------------------


def int_from_fields(o: _Ops, f: _Fields, shift_e, qlo, qhi, rnd, u, r, in_m):
    """``k = round(M * 2^(E + shift_e))`` clamped to ``[qlo, qhi]`` on the fields (exact, as
    ``round_int_value`` of the exact quotient): ``(sign, |k|)`` with ``sign`` 0 for ``k = 0``.
    ``f`` must not be NaN (callers flag it); infinities clamp."""
    xp = o.xp
    E = f.E + shift_e
    shift = -E
    pos = shift > 0
    sh = xp.clip(shift, 0, in_m + 1)
    kept_r = o.shr(f.M, sh)
    rem = f.M & (o.shl(o.u(1), sh) - o.u(1))
    big = (E + o.bit_length(f.M)) > 31  # beyond every grid: clamps
    kept = xp.where(pos, kept_r, o.shl(f.M, xp.clip(-shift, 0, o.W - 1)))
    is_pos = f.sign == o.u(0)
    up, kept = g._round_up(o, rnd, kept, rem, shift, is_pos, in_m, u, r)
    kept = kept + xp.astype(pos & up, o.U)
    lim_pos = o.u(max(qhi, 0))
    lim_neg = o.u(max(-qlo, 0))
    lim = xp.where(is_pos, lim_pos, lim_neg)
    kept = xp.where(big | f.is_inf | (kept > lim), lim, kept)
    kept = xp.where(f.is_zero, o.u(0), kept)
    sign = xp.where(kept == o.u(0), o.u(0), f.sign)
    return sign, kept


def _scaled_int(xp, x, req: Request, keys):
    fmt: IntFormat = req.fmt
    if not req.symmetric or req.zero_point is not None:
        msg = (
            f"zero points (symmetric=False, zero_point=) of {fmt.name!r} are not available on "
            "the generic route; hint: symmetric scales, or NumPy"
        )
        raise NotImplementedError(msg)
    work, W, in_e, in_m, r = _work(xp, x, req)
    shape = tuple(work.shape)
    axis, bs = _granularity(shape, req)
    view = View(xp, shape, axis, bs)
    dev = getattr(x, "device", None)
    n = g._size(work)
    if g.has_int64(xp):
        return _scaled_int64(xp, x, req, work, view, n, r, keys, dev)
    sfmt = req.scale_format
    if sfmt is None or sfmt.mantissa_bits != 0:
        msg = (
            f"{fmt.name!r} with scale={req.scale if isinstance(req.scale, str) else 'an array'}: "
            "without 64-bit types (JAX's default mode) the quotient x / scale of docs/formats.md "
            "is exact only for power-of-two scales; hint: scale_format='float8_e8m0fnu', or "
            "jax.config.update('jax_enable_x64', True)"
        )
        raise ValueError(msg)
    o = _Ops(xp, 32)
    u = _random_u(xp, view, n, req, r, 32, keys, dev)
    wv = view.fwd(work)
    b = g.bitcast(wv, xp.uint32, xp)
    if isinstance(req.scale, str):
        amax_f = fields_of(o, _amax_bits(o, view, b, 8, 23), 8, 23)
        sf, sbits = _int_scales32(o, amax_f, fmt, sfmt)
    else:
        s = _given_scale(xp, req.scale, xp.float32, view)
        f0 = fields_of(o, g.bitcast(s, xp.uint32, xp), 8, 23)
        st, sg, k, q = _scale_format_round(o, xp.zeros_like(f0.E), f0.sign, f0.M, f0.E, sfmt, 23)
        sbits = f32_bits(o, st, sg, k, q)
        sf = fields_of(o, sbits, 8, 23)
    sf = _broadcast_fields(xp, sf, b)
    t = sf.E + 23  # s = 2^t
    xf = g._fields(o, b, 8, 23)
    sign, kept = int_from_fields(o, xf, -t, fmt.min, fmt.max, req.rounding, u, r, 23)
    err = xf.is_nan
    g._raise_if_error(xp, err, fmt, req.overflow)
    if req.op is Op.ENCODE:
        k = _signed_code(o, sign, kept, fmt.bits)
        codes = xp.astype(view.back(k), g._code_dtype(xp, fmt.bits))
        if not req.scaled:
            return codes
        sv = view.to_groups(g.bitcast(sbits, xp.float32, xp))
        return Encoded(codes, sv, xp.zeros(sv.shape, dtype=xp.int32), None, axis, bs)
    st = xp.where(err, o.i(_NAN), xp.zeros_like(t))
    vals = g.bitcast(g._ieee_bits(o, st, sign, kept, t, 8, 23), xp.float32, xp)
    return narrow(xp, view.back(vals), x.dtype)


def _signed_code(o: _Ops, sign, kept, bits):
    xp = o.xp
    mask = o.u((1 << bits) - 1)
    return xp.where(sign == o.u(1), (o.u(0) - kept) & mask, kept & mask)


def _int_scales32(o: _Ops, amax_f: _Fields, fmt, sfmt):
    """Power-of-two integer scales ``sfmt(amax / max)`` on the fields (1 for a zero group)."""
    xp = o.xp
    mf = _const_fields(o, amax_f.M, float(fmt.max))
    st, sg, k, q = div_f32(o, amax_f, mf)
    # the exact quotient, rounded into sfmt in one step (as the float64 quotient is)
    valid = ~amax_f.is_zero
    ones = _const_fields(o, amax_f.M, 1.0)
    k = xp.where(valid, k, ones.M)
    q = xp.where(valid, q, ones.E)
    st = xp.where(valid, st, xp.zeros_like(st))
    st, sg, k, q = _scale_format_round(o, st, sg * 0, k, q, sfmt, 23)
    b = f32_bits(o, st, sg, k, q)
    return fields_of(o, b, 8, 23), b


def _scaled_int64(xp, x, req: Request, work, view: View, n, r, keys, dev):
    """Integer scales with 64-bit types: the float64 quotient and product of docs/formats.md
    (the NumPy route's arithmetic, in the namespace's float64)."""
    fmt = req.fmt
    f64 = xp.float64
    o = _Ops(xp, 64)
    u = _random_u(xp, view, n, req, r, 64, keys, dev)
    wv = view.fwd(work)
    if isinstance(req.scale, str):
        is64 = wv.dtype == f64
        bw = g.bitcast(wv, xp.uint64 if is64 else xp.uint32, xp)
        ob = o if is64 else _Ops(xp, 32)
        ie, im = (11, 52) if is64 else (8, 23)
        amax = g.bitcast(_amax_bits(ob, view, bw, ie, im), wv.dtype, xp)
        s = g.exact_div(xp, xp.astype(amax, f64), xp.asarray(float(fmt.max), dtype=f64))
        s = xp.where((s > 0) & (s < float("inf")), s, xp.asarray(1.0, dtype=f64))
    else:
        s = _given_scale(xp, req.scale, f64, view)
    if req.scale_format is not None:
        sfmt = req.scale_format
        sb = g.bitcast(s, xp.uint64, xp)
        st, sg, k, q = g._round_bits(o, sb, 11, 52, sfmt.params(), Rounding.NEAREST_EVEN,
                                     Overflow.SATURATE, None, 53)  # fmt: skip
        rs = g.bitcast(g._ieee_bits(o, st, sg, k, q, 11, 52), f64, xp)
        tiny = float(sfmt.smallest_subnormal if sfmt.has_zero else sfmt.min)
        s = xp.where(rs > 0, rs, xp.asarray(tiny, dtype=f64))
    s = xp.broadcast_to(s, s.shape)
    flat = xp.astype(wv, f64)
    err, k = g._round_int(xp, g.exact_div(xp, flat, s), fmt.min, fmt.max, req.rounding, u, r, f64, xp.int64,
                          1 << 62)  # fmt: skip
    g._raise_if_error(xp, err, fmt, req.overflow)
    if req.op is Op.ENCODE:
        codes = xp.astype(view.back(k & ((1 << fmt.bits) - 1)), g._code_dtype(xp, fmt.bits))
        if not req.scaled:
            return codes
        sv = view.to_groups(s)
        return Encoded(codes, sv, xp.zeros(sv.shape, dtype=xp.int64), None, view.axis,
                       view.block_size)  # fmt: skip
    vals = xp.where(err, xp.asarray(float("nan"), dtype=f64), xp.astype(k, f64) * s)
    vals = narrow(xp, xp.astype(vals, work.dtype), x.dtype)
    return view.back(vals)
