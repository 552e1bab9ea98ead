"""Block formats (OCP MX v1.0, NVFP4) on the generic route: traceable by ``jax.jit``,
``jax.grad`` and ``jax.vmap``, bit for bit as the NumPy route (docs/blocks.md).

Everything is integer arithmetic on the fields of the input (value ``M * 2^E``), element-wise
with ``xp.where``, so that no float32 subnormal is left to the namespace (XLA flushes them to
zero on the CPU):

* MX: the block maximum is an integer maximum of the magnitude bits; the power-of-two scale
  ``2^e`` follows the scale rule on the maximum's fields (``formats.block_cores
  .shared_exponent``); each element is rounded from its fields with ``E - e`` (the division by
  the scale is exact) and its value is ``kept * 2^(q + e)``, rounded once to the output;
* NVFP4: the tensor scale ``float32(amax / (6 * 448))`` and the element quotient
  ``float32(x / d)`` are correctly rounded float32 divisions (:func:`.generic_scaled.div_f32`);
  the E4M3 block scale ``E4M3(amax_b / (6 * s_t))`` is rounded once from a long division of the
  significands (the divisor has 26 bits); ``d = float32(s_b * s_t)`` and the value
  ``float32(p * d)`` are exact products rounded once (:func:`.generic_scaled.mul_f32`).

Blocks run along ``axis`` (default -1); a short last block is padded with zeros; the random
bits of stochastic rounding are those of each element's C-order index in the whole array.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.formats.enums import ScaleRule
from qemu_arrays.formats.spec import FloatFormat, Overflow, Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import generic as g
from qemu_arrays.routes import generic_scaled as gs
from qemu_arrays.routes.generic import _NAN, _Fields, _Ops
from qemu_arrays.routes.generic_scaled import narrow
from qemu_arrays.validation import check_axis

__all__ = ["run"]


def run(xp, x, req: Request, keys=None):
    """``quantize``/``encode`` of a block format on array ``x`` of namespace ``xp``."""
    if req.out is not None:
        msg = "out= is not supported for block formats off NumPy; hint: use the return value"
        raise NotImplementedError(msg)
    ndim = len(x.shape)
    if ndim == 0:
        msg = "block formats need an array of at least one dimension, got a scalar; hint: x[None]"
        raise ValueError(msg)
    axis = check_axis(-1 if req.axis is None else req.axis, ndim)
    if req.fmt.tensor_scale:
        return _nv(xp, x, req, axis, keys)
    return _mx(xp, x, req, axis, keys)


def _to_float32(xp, x):
    """float64 ``x`` rounded to float32 on its bits (nearest-even, subnormals kept): the
    namespace's cast may flush float32 subnormals."""
    o = _Ops(xp, 64)
    b = g.bitcast(x, xp.uint64, xp)
    st, sg, k, q = g._round_bits(o, b, 11, 52, gs.F32, Rounding.NEAREST_EVEN, Overflow.OWN,
                                 None, 53)  # fmt: skip
    bits = xp.astype(g._ieee_bits(o, st, sg, k, q, 8, 23), xp.uint32)
    return g.bitcast(bits, xp.float32, xp)


def _work(xp, x, to32: bool):
    """(work array, in_e, in_m, W): float32 for 16/32-bit input, and for float64 with
    ``to32``; float64 (64-bit words) otherwise."""
    dt = x.dtype
    f64 = getattr(xp, "float64", None)
    if f64 is not None and dt == f64:
        if to32:
            return _to_float32(xp, x), 8, 23, 32
        if not g.has_int64(xp):
            msg = "float64 input needs 64-bit integers; hint: jax_enable_x64"
            raise ValueError(msg)
        return x, 11, 52, 64
    if dt == xp.float32:
        return x, 8, 23, 32
    if g._is_16bit(xp, dt):
        return xp.astype(x, xp.float32), 8, 23, 32
    msg = f"x has dtype {dt}, must be float16, bfloat16, float32 or float64"
    raise TypeError(msg)


def _sig_cmp(o: _Ops, aM, bl, maxsig, ca, cm):
    """``(greater, less)``: ``ca * sig(amax)`` against ``cm * sig(max)`` (as
    ``formats.block_cores._sig_cmp``), with ``aM`` brought to ``F`` bits (24 for 32-bit words,
    which hold it exactly; 45 for 64-bit words, the rest folded into a sticky bit) and the
    element maximum's significand shifted to ``F`` bits, so that nothing overflows a word."""
    xp = o.xp
    F = 24 if o.W == 32 else 45
    blm = int(maxsig).bit_length()
    if blm > F - 3:
        msg = f"an element maximum of {blm} significant bits is too wide for this rule here"
        raise NotImplementedError(msg)
    cut = o.shr(aM, bl - F)
    sticky = (aM & (o.shl(o.u(1), bl - F) - o.u(1))) != o.u(0)
    mn = xp.where(bl > F, cut | xp.astype(sticky, o.U), o.shl(aM, F - bl))
    a = mn * o.u(ca)
    m = o.u(cm * (int(maxsig) << (F - blm)))
    return a > m, a < m


def _shared_exponent(o: _Ops, aM, aE, rule, mprec, emax_elem, maxsig):
    """``formats.block_cores.shared_exponent`` element-wise (``aM > 0``)."""
    xp = o.xp
    bl = o.bit_length(aM)
    e = aE + bl - 1 - emax_elem

    def step(cond):
        return xp.astype(cond, o.I)

    if rule in (ScaleRule.CEIL, ScaleRule.EVEN):
        p = mprec + 1
        shift = bl - p
        sh = xp.clip(shift, 0, o.W - 1)
        kept = o.shr(aM, sh)
        rem = aM & (o.shl(o.u(1), sh) - o.u(1))
        if rule == ScaleRule.CEIL:
            up = rem != o.u(0)
        else:
            half = o.shl(o.u(1), xp.clip(shift - 1, 0, o.W - 1))
            up = (rem > half) | ((rem == half) & ((kept & o.u(1)) == o.u(1)))
        return e + step((shift > 0) & up & (kept + o.u(1) == o.u(1 << p)))
    if rule == ScaleRule.FLOOR:
        return e
    if rule == ScaleRule.CEIL_POW2:
        return e + step((aM & (aM - o.u(1))) != o.u(0))
    if rule == ScaleRule.RCEIL:
        return e + step(_sig_cmp(o, aM, bl, maxsig, 1, 1)[0])
    if rule == ScaleRule.RFLOOR:
        return e - step(_sig_cmp(o, aM, bl, maxsig, 1, 1)[1])
    if rule == ScaleRule.RHALF_UP:
        lo = ~_sig_cmp(o, aM, bl, maxsig, 4, 3)[1]
        hi = ~_sig_cmp(o, aM, bl, maxsig, 2, 3)[1]
        return e - 1 + step(lo) + step(hi)
    msg = (
        f"scale_rule {rule!r} has no generic step; allowed: {', '.join(r.name for r in ScaleRule)}"
    )
    raise ValueError(msg)


def _random(xp, view, x, req, r, W, keys):
    """The elements' ``r``-bit integers ``u`` in the view's layout: the caller's ``rbits``
    (broadcast to ``x``, C order) or the counter-based bits of each element's C-order index,
    for both stochastic modes; None for the others."""
    n = g._size(x)
    dev = getattr(x, "device", None)
    if req.rbits is not None:
        u = g._random(xp, n, req.rounding, None, 0, 0, r, W, dev, req.rbits, tuple(x.shape))
        return view.fwd(xp.reshape(u, view.shape))
    if req.rounding is Rounding.STOCHASTIC_EQUAL:  # the same bits, one of them used
        req = replace(req, rounding=Rounding.STOCHASTIC)
    return gs._random_u(xp, view, n, req, r, W, keys, dev)


def _mx(xp, x, req: Request, axis, keys):
    fmt = req.fmt
    el, sc = fmt.element, fmt.scale
    work, in_e, in_m, W = _work(xp, x, req.via_float32)
    r = (53 if in_e == 11 else 32) if req.random_bits is None else req.random_bits
    if r > 32 and W == 32:
        msg = f"random_bits={r} needs 64-bit words; hint: random_bits <= 32"
        raise ValueError(msg)
    o = _Ops(xp, W)
    view = gs.View(xp, tuple(work.shape), axis, fmt.block_size)
    u = _random(xp, view, work, req, r, W, keys)
    b = g.bitcast(view.fwd(work), o.U, xp)
    mag = b & o.u((1 << (in_e + in_m)) - 1)
    infb = o.u(((1 << in_e) - 1) << in_m)
    amaxb = xp.max(mag, axis=-1, keepdims=True)
    special = amaxb >= infb
    af = g._fields(o, xp.where(special, o.u(0), amaxb), in_e, in_m)
    if isinstance(el, FloatFormat):
        mprec, maxsig = el.mantissa_bits, el.params()[3]
    else:
        mprec, maxsig = el.max.bit_length() - 1, el.max
    e = _shared_exponent(o, af.M, af.E, fmt.scale_rule, mprec, fmt.element_emax, maxsig)
    e = xp.where(o.u(0) == af.M, o.i(sc.emin), xp.maximum(e, o.i(sc.emin)))
    special = special | (e > sc.emax)
    e = xp.where(special, o.i(0), e)
    scode = xp.where(special, o.u((1 << sc.bits) - 1), xp.astype(e + sc.bias, o.U))
    f = g._fields(o, b, in_e, in_m)
    if isinstance(el, FloatFormat):
        ep = el.params()
        st, sg, k, q = g._round_bits(o, b, in_e, in_m, ep, req.rounding, Overflow.SATURATE, u, r,
                                     f=f._replace(E=f.E - e))  # fmt: skip
        vbits = g._ieee_bits(o, st, sg, k, q + e, in_e, in_m)
        codes = g._format_code(o, st, sg, k, q, ep)
    else:
        fb = fmt.element_fraction_bits
        sg, k = gs.int_from_fields(o, f, fb - e, el.min, el.max, req.rounding, u, r, in_m)
        vbits = g._ieee_bits(o, xp.zeros_like(e), sg, k, e - fb + xp.zeros_like(f.E), in_e, in_m)
        codes = gs._signed_code(o, sg, k, el.max.bit_length() + 1)
    nan_bits = o.u(((1 << in_e) - 1) << in_m | (1 << (in_m - 1)))
    return _finish(xp, x, req, view, work, o, special, vbits, nan_bits, codes, scode, None)


def _finish(xp, x, req, view, work, o, special, vbits, nan_bits, codes, scode, tscale):
    fmt = req.fmt
    if req.op is Op.ENCODE:
        codes = xp.where(special, o.u(0), codes)
        cdt = xp.uint8 if fmt.bits <= 8 else xp.uint16
        codes = xp.astype(view.back(codes), cdt)
        scales = xp.astype(view.to_groups(scode), xp.uint8)
        return Encoded(codes, scales, None, tscale, view.axis, fmt.block_size)
    vbits = xp.where(special, nan_bits, vbits)
    vals = g.bitcast(vbits, xp.float32 if o.W == 32 else xp.float64, xp)
    return narrow(xp, view.back(vals), x.dtype)


def _long_div(o: _Ops, N, D, steps):
    """``(floor(N / D * 2^(steps - 1)), remainder != 0)`` for words with ``N < 2 D`` and
    ``2 D`` below ``2^W``: restoring division, one quotient bit per step."""
    xp = o.xp
    rem = N
    q = xp.zeros_like(N)
    for _ in range(steps):
        ge = rem >= D
        rem = xp.where(ge, rem - D, rem)
        q = (q << 1) | xp.astype(ge, o.U)
        rem = rem << 1
    return q, rem != o.u(0)


def _tensor_scale(xp, o: _Ops, work, req: Request):
    """``(float32 bits of the tensor scale, its normalised fields)``: given (``scale=``) or
    ``float32(amax / (element max * scale max))`` (docs/blocks.md)."""
    fmt = req.fmt
    if req.scale is not None:
        ts = req.scale
        if isinstance(ts, numbers.Real) or not g._is_tracing(ts):
            from qemu_arrays.routes.cpu_blocks import _check_tensor_scale

            tsv = _check_tensor_scale(np.asarray(ts).reshape(()) if not isinstance(
                ts, numbers.Real) else ts)  # fmt: skip
            tb = xp.asarray(int(np.float32(tsv).view(np.uint32)), dtype=xp.uint32)
        else:
            tb = g.bitcast(xp.astype(ts, xp.float32), xp.uint32, xp)
        return tb, gs.fields_of(o, tb, 8, 23)
    b = g.bitcast(work, xp.uint32, xp)
    mag = b & o.u(0x7FFFFFFF)
    mag = xp.where(mag >= o.u(0x7F800000), o.u(0), mag)
    amax = xp.max(mag)
    af = gs.fields_of(o, amax, 8, 23)
    div = float(fmt.element.max) * float(fmt.scale.max)
    st, _sg, k, q = gs.div_f32(o, af, gs._const_fields(o, amax, div))
    one = gs._const_fields(o, amax, 1.0)
    tiny = gs._const_fields(o, amax, float(np.finfo(np.float32).smallest_subnormal))
    k = xp.where(af.is_zero, one.M, k)  # an all-zero tensor: 1
    q = xp.where(af.is_zero, one.E, q)
    z = k == o.u(0)  # a quotient rounding to zero: the smallest float32
    k = xp.where(z, tiny.M, k)
    q = xp.where(z, tiny.E, q)
    tb = gs.f32_bits(o, xp.zeros_like(st), xp.zeros_like(k), k, q)
    return tb, gs.fields_of(o, tb, 8, 23)


def _nv(xp, x, req: Request, axis, keys):
    fmt = req.fmt
    el, sc = fmt.element, fmt.scale
    work, _e, _m, _W = _work(xp, x, True)
    r = 32 if req.random_bits is None else req.random_bits
    if r > 32:
        msg = f"random_bits={r}: NVFP4 rounds float32 quotients; hint: random_bits <= 32"
        raise ValueError(msg)
    o = _Ops(xp, 32)
    tb, tf = _tensor_scale(xp, o, work, req)
    view = gs.View(xp, tuple(work.shape), axis, fmt.block_size)
    u = _random(xp, view, work, req, r, 32, keys)
    b = g.bitcast(view.fwd(work), xp.uint32, xp)
    mag = b & o.u(0x7FFFFFFF)
    amaxb = xp.max(mag, axis=-1, keepdims=True)
    special = amaxb >= o.u(0x7F800000)
    af = gs.fields_of(o, xp.where(special, o.u(0), amaxb), 8, 23)
    # the block scale: E4M3(amax / (element max * s_t)), one rounding of the exact quotient
    ep = el.params()
    sigmax, m_el, emax_el = ep[3], ep[0], ep[2]
    tM = xp.broadcast_to(tf.M, af.M.shape)
    dint = o.u(sigmax) * tM  # sigmax * Mts < 2^27
    bl = o.bit_length(dint)
    D = o.shl(dint, 26 - bl)
    dexp = (emax_el - m_el) + tf.E - (26 - bl)
    N4 = af.M << 2
    steps = 12
    qd, sticky = _long_div(o, N4, D, steps)
    Mv = (qd << 1) | xp.astype(sticky, o.U)
    Ev = af.E - 2 - dexp - steps
    zero = af.is_zero
    fv = _Fields(xp.zeros_like(Mv), Ev * 0, Ev * 0, xp.where(zero, o.u(0), Mv), Ev,
                 xp.zeros_like(zero), xp.zeros_like(zero), zero)  # fmt: skip
    sp = sc.params()
    sst, ssg, sk, sq = g._round_bits(o, Mv, 8, steps + 1, sp, Rounding.NEAREST_EVEN,
                                     Overflow.SATURATE, None, 32, f=fv)  # fmt: skip
    snan = g._format_code(o, o.i(_NAN), o.u(0), o.u(0), o.i(0), sp)
    scode = xp.where(special, snan, g._format_code(o, sst, ssg, sk, sq, sp))
    # d = float32(s_b * s_t)
    dst, _dsg, dk, dq = gs.mul_f32(o, xp.zeros_like(sk), sk, sq, _bcast(xp, tf, sk))
    dzero = dk == o.u(0)
    df = gs.fields_of(o, gs.f32_bits(o, dst, xp.zeros_like(dk), dk, dq), 8, 23)
    df = df._replace(M=xp.where(dzero, o.u(1 << 23), df.M), is_zero=df.is_zero & ~dzero)
    xf = gs.fields_of(o, b, 8, 23)
    q1 = gs.div_f32(o, xf, _bcast(xp, df, b))
    st, sg, k, q = g._round_bits(o, b, 8, 23, ep, req.rounding, Overflow.SATURATE, u, r,
                                 f=gs.value_fields(o, *q1))  # fmt: skip
    dz = xp.broadcast_to(dzero, b.shape)
    st = xp.where(dz, xp.zeros_like(st), st)
    # a block whose scale rounded to zero: zeros of the input's sign (E2M1 has -0)
    neg0 = (b >> o.u(31)) & o.u(1) if el.has_negative_zero else o.u(0)
    sg = xp.where(dz, neg0, sg)
    k = xp.where(dz, o.u(0), k)
    q = xp.where(dz, o.i(0), q)
    codes = g._format_code(o, st, sg, k, q, ep)
    tscale = xp.reshape(g.bitcast(tb, xp.float32, xp), ()) if req.op is Op.ENCODE else None
    if req.op is Op.ENCODE:
        return _finish(xp, x, req, view, work, o, special, None, None, codes, scode, tscale)
    f64 = getattr(xp, "float64", None)
    if f64 is not None and x.dtype == f64:  # float64 output: the exact product p * d
        ev = g.bitcast(g._ieee_bits(o, st, sg, k, q, 8, 23), xp.float32, xp)
        dv = g.bitcast(gs.f32_bits(o, dst, xp.zeros_like(dk), dk, dq), xp.float32, xp)
        vals = xp.astype(ev, f64) * xp.astype(dv, f64)
        vals = xp.where(special, xp.asarray(float("nan"), dtype=f64), vals)
        return view.back(vals)
    pst, psg, pk, pq = gs.mul_f32(o, sg, k, q, _bcast(xp, df, b))
    vbits = gs.f32_bits(o, pst, psg, pk, pq)
    return _finish(xp, x, req, view, work, o, special, vbits, o.u(0x7FC00000), codes, scode,
                   None)  # fmt: skip


def _bcast(xp, f: _Fields, like) -> _Fields:
    return _Fields(*(xp.broadcast_to(a, like.shape) for a in f))
