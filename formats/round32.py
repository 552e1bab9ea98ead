"""32-bit, select-only stochastic and directed rounding of float32 bits (CPU element kernels).

:func:`sr_bits32` is the counter-based random word of :func:`qemu_arrays.formats.cores.random_u`
(``r <= 32``), and :func:`round32` the rounding of :func:`qemu_arrays.formats.cores.round_ieee_bits`
for the modes TOWARD_ZERO, UP, DOWN and STOCHASTIC, both written as ``@intrinsic`` functions that
emit LLVM IR on ``i32`` words only, with no branch and no call, so that a kernel's element loop
vectorizes (numba types Python integer arithmetic as int64; see :mod:`qemu_arrays.formats.rne32`).

:func:`round32` takes the ``plan`` of ``rne_f32_plan`` (the same formats: signed, with zero and
subnormals, at most float32's precision and range) followed by one float32 constant
``2**(emin - m)``, the format's smallest subnormal. In the format's normal range the magnitude
bits are truncated at the kept LSB and the LSB incremented where the mode rounds up (a carry into
the exponent is right); below it the kept integer ``big >> s`` of the reference (``big`` the
significand with its implicit bit, ``s`` the reference's shift) is incremented the same way and
scaled by ``2**(emin - m)`` in float32 (exact). Stochastic rounding rounds up when ``u < t``, ``t``
the remainder's top ``r`` bits, as the reference does, for every shift (the shift amounts are
clamped only where the result no longer depends on them). Overflow follows each mode's rule
(``rounds_away_at_max``); NaN input gives the canonical NaN (a format without NaN is the
caller's to route to the general kernel, as for the nearest-even kernel).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from qemu_arrays.formats.codes import RDN, RTZ, RUP, SR
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = ["round32", "round32_cpu", "sr_bits32", "sr_bits32_cpu", "sr_event32", "sr_event32_cpu"]

_QNAN32 = 0x7FC00000
_I32 = ir.IntType(32)


def _c(v):
    return ir.Constant(_I32, v)


def _to_i32(context, builder, val, ty):
    return builder.trunc(context.cast(builder, val, ty, types.int64), _I32)


def _mix32(builder, x):
    """Wellons' lowbias32 on an i32 (wrapping multiplies are the reference's ``& M32``)."""
    x = builder.xor(x, builder.lshr(x, _c(16)))
    x = builder.mul(x, _c(0x7FEB352D))
    x = builder.xor(x, builder.lshr(x, _c(15)))
    x = builder.mul(x, _c(0x846CA68B - (1 << 32)))
    return builder.xor(x, builder.lshr(x, _c(16)))


@intrinsic
def sr_bits32(typingctx, base, j, k0, k1, k2, r):
    """The ``r``-bit random integer (``1 <= r <= 32``) of element ``base + j`` under the key
    ``(k0, k1, k2)``: ``random_u(k0, k1, k2, base + j, r)``, for ``0 <= j < 2**32``."""
    args = (base, j, k0, k1, k2, r)
    if not all(isinstance(a, types.Integer) for a in args):
        return None

    def codegen(context, builder, signature, llargs):
        i64 = ir.IntType(64)
        b, jj, a0, a1, a2, rr = (
            _to_i32(context, builder, v, t) for v, t in zip(llargs, signature.args, strict=True)
        )
        b64 = context.cast(builder, llargs[0], signature.args[0], types.int64)
        b_hi = builder.trunc(builder.lshr(b64, ir.Constant(i64, 32)), _I32)
        lo = builder.add(b, jj)  # the index's low word; a wrap carries into the high word
        carry = builder.zext(builder.icmp_unsigned("<", lo, b), _I32)
        hi = builder.add(b_hi, carry)
        h = _mix32(builder, builder.xor(lo, a2))
        h = _mix32(builder, builder.xor(builder.xor(h, hi), a1))
        w0 = _mix32(builder, builder.add(h, a0))
        return builder.lshr(w0, builder.sub(_c(32), rr))

    return types.uint32(*args), codegen


@intrinsic
def sr_event32(typingctx, h, e, k0, k1, r):
    """The ``r``-bit random integer (``1 <= r <= 32``) of index ``(e << 32) | t`` under the key
    ``(k0, k1, k2)``, given ``h = mix32(t ^ k2)`` (the same for every ``e``: the caller hoists
    it): ``random_u(k0, k1, k2, (e << 32) | t, r)`` for ``0 <= t < 2**32``, with ``e``'s low
    32 bits. The matmul kernels draw event ``t`` of output element ``e`` this way, two hashes
    per element."""
    args = (h, e, k0, k1, r)
    if not all(isinstance(a, types.Integer) for a in args):
        return None

    def codegen(context, builder, signature, llargs):
        hh, ee, a0, a1, rr = (
            _to_i32(context, builder, v, t) for v, t in zip(llargs, signature.args, strict=True)
        )
        w = _mix32(builder, builder.xor(builder.xor(hh, ee), a1))
        w = _mix32(builder, builder.add(w, a0))
        return builder.lshr(w, builder.sub(_c(32), rr))

    return types.uint32(*args), codegen


def _select_up(builder, mode, sign_neg, rem, u, t):
    """Whether the magnitude rounds up: stochastic ``u < t``, UP/DOWN on their side when inexact."""
    inexact = builder.icmp_unsigned("!=", rem, _c(0))
    up_sr = builder.icmp_unsigned("<", u, t)
    up_up = builder.and_(inexact, builder.not_(sign_neg))
    up_dn = builder.and_(inexact, sign_neg)
    up = builder.select(
        builder.icmp_signed("==", mode, _c(RDN)), up_dn, ir.Constant(ir.IntType(1), 0)
    )
    up = builder.select(builder.icmp_signed("==", mode, _c(RUP)), up_up, up)
    return builder.select(builder.icmp_signed("==", mode, _c(SR)), up_sr, up)


def _rounds_away(builder, mode, sign_neg):
    """``rounds_away_at_max`` for the four modes: stochastic always, UP/DOWN on their side."""
    one = ir.Constant(ir.IntType(1), 1)
    away = builder.select(builder.icmp_signed("==", mode, _c(RUP)), builder.not_(sign_neg), one)
    away = builder.select(builder.icmp_signed("==", mode, _c(RDN)), sign_neg, away)
    return builder.select(
        builder.icmp_signed("==", mode, _c(RTZ)), ir.Constant(ir.IntType(1), 0), away
    )


def _clamp(builder, v, lo, hi):
    v = builder.select(builder.icmp_signed("<", v, _c(lo)), _c(lo), v)
    return builder.select(builder.icmp_signed(">", v, _c(hi)), _c(hi), v)


@intrinsic
def round32(typingctx, b, plan, mode, u, r):
    """The float32 with bits ``b`` rounded into the format of ``plan`` under ``mode``
    (TOWARD_ZERO, UP, DOWN or STOCHASTIC with the ``r``-bit random integer ``u``), as uint32
    float32 bits, on 32-bit words only."""
    if not isinstance(b, types.Integer) or not isinstance(plan, types.BaseTuple):
        return None
    if len(plan) != 12:
        return None

    def codegen(context, builder, signature, args):
        bt, pt, mt, ut, rt = signature.args
        f32 = ir.FloatType()

        def field(k, ty):
            return context.cast(builder, builder.extract_value(args[1], k), pt[k], ty)

        x = _to_i32(context, builder, args[0], bt)
        md = _to_i32(context, builder, args[2], mt)
        uu = _to_i32(context, builder, args[3], ut)
        rr = _to_i32(context, builder, args[4], rt)
        sh, _h, _l, _m0, lo_field, max_mag, ovf_mag, ovf_nan, _hn, neg_zero = (
            builder.trunc(field(k, types.int64), _I32) for k in range(10)
        )
        c_sub = field(11, types.float32)
        # loop-invariant constants
        ovf_val = builder.select(builder.icmp_unsigned("!=", ovf_nan, _c(0)), _c(_QNAN32), ovf_mag)
        zero_sign = builder.select(builder.icmp_unsigned("!=", neg_zero, _c(0)), _c(-1), _c(0))
        lo_mag = builder.shl(lo_field, _c(23))
        sign = builder.and_(x, _c(0x80000000))
        sign_neg = builder.icmp_unsigned("!=", sign, _c(0))
        mag = builder.and_(x, _c(0x7FFFFFFF))
        ef = builder.lshr(mag, _c(23))
        sub = builder.icmp_unsigned("<", mag, lo_mag)
        # below the smallest normal: the significand and the reference's shift
        ef1 = builder.select(builder.icmp_unsigned("<", ef, _c(1)), _c(1), ef)
        hidden = builder.select(builder.icmp_unsigned("!=", ef, _c(0)), _c(0x800000), _c(0))
        big = builder.or_(builder.and_(mag, _c(0x7FFFFF)), hidden)
        s_true = builder.select(sub, builder.add(sh, builder.sub(lo_field, ef1)), sh)
        B = builder.select(sub, big, mag)
        sc = builder.select(builder.icmp_signed(">", s_true, _c(24)), _c(24), s_true)
        low = builder.sub(builder.shl(_c(1), sc), _c(1))
        rem = builder.and_(B, low)
        kept = builder.lshr(B, sc)
        # the remainder's top r bits (rem < 2**24, so shifts past 31 need no more than 31)
        d1 = _clamp(builder, builder.sub(s_true, rr), 0, 31)
        d2 = _clamp(builder, builder.sub(rr, s_true), 0, 31)
        t = builder.lshr(builder.shl(rem, d2), d1)
        up = _select_up(builder, md, sign_neg, rem, uu, t)
        kept = builder.add(kept, builder.zext(up, _I32))
        r_norm = builder.shl(kept, sh)
        r_sub = builder.bitcast(builder.fmul(builder.uitofp(kept, f32), c_sub), _I32)
        res = builder.select(sub, r_sub, r_norm)
        # overflow: a finite result above the largest magnitude, and an infinite input
        over = builder.icmp_unsigned(">", res, max_mag)
        away = _rounds_away(builder, md, sign_neg)
        res = builder.select(over, builder.select(away, ovf_val, max_mag), res)
        res = builder.select(builder.icmp_unsigned("==", mag, _c(0x7F800000)), ovf_val, res)
        res = builder.select(builder.icmp_unsigned(">", mag, _c(0x7F800000)), _c(_QNAN32), res)
        keep = builder.select(builder.icmp_unsigned("==", res, _c(_QNAN32)), _c(0), _c(-1))
        keep = builder.select(builder.icmp_unsigned("==", res, _c(0)), zero_sign, keep)
        return builder.or_(res, builder.and_(sign, keep))

    return types.uint32(b, plan, mode, u, r), codegen


@njit(cache=True, nogil=True)
def round32_cpu(b, plan, mode, u, r):
    """:func:`round32` compiled for the CPU (tests)."""
    return round32(b, plan, mode, u, r)  # type: ignore[call-arg]  # an @intrinsic


@njit(cache=True, nogil=True)
def sr_bits32_cpu(base, j, k0, k1, k2, r):
    """:func:`sr_bits32` compiled for the CPU (tests)."""
    return sr_bits32(base, j, k0, k1, k2, r)  # type: ignore[call-arg]  # an @intrinsic


@njit(cache=True, nogil=True)
def sr_event32_cpu(h, e, k0, k1, r):
    """:func:`sr_event32` compiled for the CPU (tests)."""
    return sr_event32(h, e, k0, k1, r)  # type: ignore[call-arg]  # an @intrinsic
