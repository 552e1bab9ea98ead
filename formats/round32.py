"""32-bit, select-only stochastic and directed rounding of float32 bits (CPU element kernels).

:func:`sr_bits32` is the counter-based random word of :func:`qemu_arrays.formats.cores.random_u`
(``r <= 32``), and :func:`round32` the rounding of :func:`qemu_arrays.formats.cores.round_ieee_bits`
for the modes TOWARD_ZERO, UP, DOWN and STOCHASTIC, both written as ``@intrinsic`` functions that
emit LLVM IR on ``i32`` words only, with no branch and no call, so that a kernel's element loop
vectorizes (numba types Python integer arithmetic as int64; see :mod:`qemu_arrays.formats.rne32`).

:func:`round32` takes the first ten constants of ``rne_f32_plan``'s plan (the same formats:
signed, with zero and subnormals, at most float32's precision and range), then the float32
constants ``2**(emin - m)`` (the format's smallest subnormal) and ``2**(m - emin)`` (one factor,
or two where it exceeds float32's range). The mode is a literal: each mode compiles to its own
selects only.

In the format's normal range the magnitude bits get an increment below the kept LSB and are
truncated there (a carry into the exponent is right): none toward zero, all ones (``2**s - 1``)
on the side UP or DOWN rounds away from zero, and for stochastic rounding the complement of
the random integer ``u`` placed with its top bit just below the kept LSB. The carry out of the
remainder ``rem`` (``s`` bits) is then exactly the reference's ``u < t``, ``t = floor(rem *
2**(r - s))`` its top ``r`` bits: with ``v = floor((2**r - 1 - u) * 2**(s - r))``, ``rem + v >=
2**s`` iff ``rem >= (u + 1) * 2**(s - r)`` (``s >= r``) or ``rem > floor(u / 2**(r - s))`` (``s <
r``), both ``t > u``. Below the smallest normal, ``y = |x| * 2**(m - emin)`` is exact (a power of
two, ``y < 2**m``): the kept integer is ``floor(y)`` and the remainder's fraction ``y -
floor(y)`` (exact); stochastic rounding compares the random word with ``floor(frac * 2**32)``
(exact, below ``2**32``) with its low ``32 - r`` bits cleared, i.e. ``u < floor(frac * 2**r)``;
the result ``kept * 2**(emin - m)`` is exact in float32. Overflow follows each mode's rule
(``rounds_away_at_max``); NaN input gives the canonical NaN (a format without NaN is the
caller's to route to the general kernel, as for the nearest-even kernel).

:func:`sr_word32_run` is the random word for a run of indices whose low word does not wrap (the
kernel splits a chunk where it does): the carry of :func:`sr_bits32` and the high word's mixing
with the key leave the loop. Per element, on AVX-512, the stochastic kernel runs about 3.9
vector instructions (the hash 1.9 of them: six 32-bit multiplies, nine shifts per 16 lanes).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from qemu_arrays.formats.codes import RDN, RTZ, RUP, SR
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = [
    "round32",
    "round32_cpu",
    "code32",
    "round64",
    "sr_bits32",
    "sr_bits32_cpu",
    "sr_event32",
    "sr_event32_cpu",
    "sr_word32_run",
    "sr_word64_run",
    "value32",
]

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


@intrinsic
def sr_word32_run(typingctx, lo0, j, hk1, k0, k2):
    """The random word of element ``i = base + j`` for a run of indices that does not cross a
    multiple of ``2**32``: ``lo0 = i & 0xFFFFFFFF`` at ``j = 0`` (``lo0 + j < 2**32``), and the
    high word of ``base`` given pre-mixed with the key as ``hk1 = hi ^ k1`` (no carry to
    propagate). Its top ``r`` bits are :func:`sr_bits32` (``random_u(k0, k1, k2, i, r)``)."""
    args = (lo0, j, hk1, k0, k2)
    if not all(isinstance(a, types.Integer) for a in args):
        return None

    def codegen(context, builder, signature, llargs):
        lo, jj, hk, a0, a2 = (
            _to_i32(context, builder, v, t) for v, t in zip(llargs, signature.args, strict=True)
        )
        h = _mix32(builder, builder.xor(builder.add(lo, jj), a2))
        h = _mix32(builder, builder.xor(h, hk))
        return _mix32(builder, builder.add(h, a0))

    return types.uint32(*args), codegen


def _rounds_away(builder, mode, sign_neg):
    """``rounds_away_at_max`` for the four modes: stochastic always, UP/DOWN on their side."""
    if mode == RUP:
        return builder.not_(sign_neg)
    if mode == RDN:
        return sign_neg
    return ir.Constant(ir.IntType(1), int(mode == SR))


def _mode_of(mode_type):
    """The rounding code of a literal ``mode`` argument, or None (read at run time)."""
    lit = getattr(mode_type, "literal_value", None)
    return lit if lit in (RTZ, RUP, RDN, SR) else None


class _Width:
    """The IEEE binary format a rounding kernel works on: float32 (``i32`` words) or float64."""

    def __init__(self, bits):
        self.bits = bits
        self.it = ir.IntType(bits)
        self.ft = ir.FloatType() if bits == 32 else ir.DoubleType()
        self.ty = types.uint32 if bits == 32 else types.uint64
        self.mant = 23 if bits == 32 else 52
        self.inf = 0x7F800000 if bits == 32 else 0x7FF0000000000000
        self.qnan = _QNAN32 if bits == 32 else 0x7FF8000000000000

    def c(self, v):
        v &= (1 << self.bits) - 1
        return ir.Constant(self.it, v - (1 << self.bits) if v >> (self.bits - 1) else v)

    def arg(self, context, builder, val, ty):
        v = context.cast(builder, val, ty, types.int64)
        return v if self.bits == 64 else builder.trunc(v, self.it)


def _round_ir(context, builder, signature, args, md, wd):
    """The IR of :func:`round32` (``wd`` 32 bits) and :func:`round64` (64 bits)."""
    bt, pt, _mt, ut, rt = signature.args
    c, ft = wd.c, wd.ft

    def field(k, ty):
        return context.cast(builder, builder.extract_value(args[1], k), pt[k], ty)

    x = wd.arg(context, builder, args[0], bt)
    uu = wd.arg(context, builder, args[3], ut)
    rr = wd.arg(context, builder, args[4], rt)
    sh, _h, low, _m0, lo_field, max_mag, ovf_mag, ovf_nan, _hn, neg_zero = (
        wd.arg(context, builder, builder.extract_value(args[1], k), pt[k]) for k in range(10)
    )
    fty = types.float32 if wd.bits == 32 else types.float64
    c_sub, c1 = field(10, fty), field(11, fty)
    # loop-invariant constants
    ovf_val = builder.select(builder.icmp_unsigned("!=", ovf_nan, c(0)), c(wd.qnan), ovf_mag)
    zero_sign = builder.select(builder.icmp_unsigned("!=", neg_zero, c(0)), c(-1), c(0))
    lo_mag = builder.shl(lo_field, c(wd.mant))
    sign = builder.and_(x, c(1 << (wd.bits - 1)))
    sign_neg = builder.icmp_unsigned("!=", sign, c(0))
    mag = builder.and_(x, c((1 << (wd.bits - 1)) - 1))
    sub = builder.icmp_unsigned("<", mag, lo_mag)
    # the format's normal range: add the rounding increment below the kept LSB, truncate
    # the random word's top r bits, in place (u * 2**(bits - r)); loop-invariant mask
    mask_r = builder.shl(c(-1), builder.sub(c(wd.bits), rr))
    if md == SR:  # the complement of u, its top bit just below the kept LSB: the carry
        # out of the remainder is u < t (t the remainder's top r bits), see the module doc
        top = builder.and_(builder.not_(uu), mask_r)
        inc = builder.lshr(top, builder.sub(c(wd.bits), sh))
    elif md == RUP:
        inc = builder.select(sign_neg, c(0), low)
    elif md == RDN:
        inc = builder.select(sign_neg, low, c(0))
    else:
        inc = c(0)
    r_norm = builder.and_(builder.add(mag, inc), builder.not_(low))
    # below: y = |x| * 2**(m - emin) (exact, < 2**m), its integer part and remainder
    # (elements in the normal range compute garbage here, never selected)
    y = builder.fmul(builder.bitcast(mag, ft), c1)
    if len(pt) == 13:  # 2**(m - emin) beyond the float's range: a second factor
        y = builder.fmul(y, field(12, fty))
    kept = builder.fptosi(y, wd.it)
    if md != RTZ:
        frac = builder.fsub(y, builder.sitofp(kept, ft))
        if md == SR:  # u < t, t = floor(frac * 2**r): w < t * 2**(bits - r), the latter
            # floor(frac * 2**bits) (exact, < 2**bits) with its low bits - r bits cleared
            t = builder.fptoui(builder.fmul(frac, ir.Constant(ft, 2.0**wd.bits)), wd.it)
            up = builder.icmp_unsigned("<", uu, builder.and_(t, mask_r))
        else:
            inexact = builder.fcmp_unordered("!=", frac, ir.Constant(ft, 0.0))
            side = sign_neg if md == RDN else builder.not_(sign_neg)
            up = builder.and_(inexact, side)
        kept = builder.add(kept, builder.zext(up, wd.it))
    # kept * 2**(emin - m) as (kept * (c_sub * 2**K)) * 2**-K, K = 64 (512 for float64) where
    # c_sub is tiny, else 0: both steps exact, and no operand subnormal (a subnormal operand
    # costs a microcode assist on x86 CPUs in every lane, selected or not); loop-invariant
    kk = 64 if wd.bits == 32 else 512
    tiny = builder.fcmp_ordered("<", c_sub, ir.Constant(ft, 2.0 ** (4 - kk)))
    k_up = builder.select(tiny, ir.Constant(ft, 2.0**kk), ir.Constant(ft, 1.0))
    k_down = builder.select(tiny, ir.Constant(ft, 2.0**-kk), ir.Constant(ft, 1.0))
    r_sub = builder.fmul(builder.fmul(builder.sitofp(kept, ft), builder.fmul(c_sub, k_up)), k_down)
    r_sub = builder.bitcast(r_sub, wd.it)
    res = builder.select(sub, r_sub, r_norm)
    # overflow: a finite result above the largest magnitude, and an infinite input
    over = builder.icmp_unsigned(">", res, max_mag)
    away = _rounds_away(builder, md, sign_neg)
    res = builder.select(over, builder.select(away, ovf_val, max_mag), res)
    if md != SR:  # stochastic rounding already rounds an infinity away (an overflow)
        res = builder.select(builder.icmp_unsigned("==", mag, c(wd.inf)), ovf_val, res)
    res = builder.select(builder.icmp_unsigned(">", mag, c(wd.inf)), c(wd.qnan), res)
    keep = builder.select(builder.icmp_unsigned("==", res, c(wd.qnan)), c(0), c(-1))
    keep = builder.select(builder.icmp_unsigned("==", res, c(0)), zero_sign, keep)
    return builder.or_(res, builder.and_(sign, keep))


def _make_round(bits):
    wd = _Width(bits)

    def round_bits(typingctx, b, plan, mode, w, r):
        if not isinstance(b, types.Integer) or not isinstance(plan, types.BaseTuple):
            return None
        if len(plan) not in (12, 13) or _mode_of(mode) is None:
            return None
        md = _mode_of(mode)

        def codegen(context, builder, signature, args):
            return _round_ir(context, builder, signature, args, md, wd)

        return wd.ty(b, plan, mode, w, r), codegen

    return intrinsic(round_bits)


round32 = _make_round(32)
round32.__doc__ = """round32(b, plan, mode, w, r): the float32 with bits ``b`` rounded into the format
of ``plan`` under ``mode`` (a literal: TOWARD_ZERO, UP, DOWN or STOCHASTIC with the random
word ``w``, whose top ``r`` bits are the element's ``r``-bit random integer ``u``), as uint32
float32 bits, on 32-bit words only."""
round64 = _make_round(64)
round64.__doc__ = """round64(b, plan, mode, w, r): :func:`round32` for the float64 with bits ``b``
(``plan`` from ``round_f64_plan``; ``w`` a 64-bit word, ``r <= 62``), as uint64 float64 bits."""


@intrinsic
def sr_word64_run(typingctx, lo0, j, hk1, hk1b, k0, k2):
    """The two random words of element ``i = base + j`` as one 64-bit word ``(w0 << 32) | w1``
    (its top ``r`` bits are ``random_u(k0, k1, k2, i, r)`` for ``r <= 62``), for a run as in
    :func:`sr_word32_run`: ``hk1 = hi ^ k1``, ``hk1b = ((hi + 0x9E3779B9) & M32) ^ k1``."""
    args = (lo0, j, hk1, hk1b, k0, k2)
    if not all(isinstance(a, types.Integer) for a in args):
        return None

    def codegen(context, builder, signature, llargs):
        i64 = ir.IntType(64)
        lo, jj, hk, hkb, a0, a2 = (
            _to_i32(context, builder, v, t) for v, t in zip(llargs, signature.args, strict=True)
        )
        h = _mix32(builder, builder.xor(builder.add(lo, jj), a2))
        w0 = _mix32(builder, builder.add(_mix32(builder, builder.xor(h, hk)), a0))
        w1 = _mix32(builder, builder.add(_mix32(builder, builder.xor(h, hkb)), a0))
        hi = builder.shl(builder.zext(w0, i64), ir.Constant(i64, 32))
        return builder.or_(hi, builder.zext(w1, i64))

    return types.uint64(*args), codegen


@njit(cache=True, nogil=True)
def round32_cpu(b, plan, mode, w, r):
    """:func:`round32` compiled for the CPU (tests), ``mode`` read at run time, ``w`` the random word."""
    if mode == SR:
        return round32(b, plan, SR, w, r)  # an @intrinsic
    if mode == RUP:
        return round32(b, plan, RUP, w, r)
    if mode == RDN:
        return round32(b, plan, RDN, w, r)
    return round32(b, plan, RTZ, w, r)


@njit(cache=True, nogil=True)
def sr_bits32_cpu(base, j, k0, k1, k2, r):
    """:func:`sr_bits32` compiled for the CPU (tests)."""
    return sr_bits32(base, j, k0, k1, k2, r)  # type: ignore[call-arg]  # an @intrinsic


@njit(cache=True, nogil=True)
def sr_event32_cpu(h, e, k0, k1, r):
    """:func:`sr_event32` compiled for the CPU (tests)."""
    return sr_event32(h, e, k0, k1, r)  # type: ignore[call-arg]  # an @intrinsic


@intrinsic
def code32(typingctx, b, r, cplan):
    """The format's code (uint32) of ``r``, the float32 bits of the input ``b`` rounded into the
    format (by ``rne32`` or :func:`round32`), for the plan of ``kernels.elements.code_plan``
    (``sh, adj, lo_mag, scale, inf_code, nan_pos, nan_neg, mag_bits``): normal, the float32
    exponent and mantissa fields re-biased; subnormal, ``value * 2**(m - emin)`` (exact); inf
    and NaN, the format's codes (a NaN's sign from the input). On 32-bit words only."""
    if not isinstance(b, types.Integer) or not isinstance(r, types.Integer):
        return None
    if not isinstance(cplan, types.BaseTuple) or len(cplan) != 8:
        return None

    def codegen(context, builder, signature, args):
        bt, rt, pt = signature.args
        f32 = ir.FloatType()
        x = _to_i32(context, builder, args[0], bt)
        rr = _to_i32(context, builder, args[1], rt)
        sh, adj, lo_mag, _s, inf_code, nan_pos, nan_neg, mag_bits = (
            _to_i32(context, builder, builder.extract_value(args[2], k), pt[k]) for k in range(8)
        )
        scale = context.cast(builder, builder.extract_value(args[2], 3), pt[3], types.float32)
        mag = builder.and_(rr, _c(0x7FFFFFFF))
        c_norm = builder.sub(builder.lshr(mag, sh), adj)
        c_sub = builder.fptosi(builder.fmul(builder.bitcast(mag, f32), scale), _I32)
        c = builder.select(builder.icmp_unsigned("<", mag, lo_mag), c_sub, c_norm)
        c = builder.select(builder.icmp_unsigned("==", mag, _c(0x7F800000)), inf_code, c)
        c = builder.or_(c, builder.shl(builder.lshr(rr, _c(31)), mag_bits))
        neg_in = builder.icmp_signed("<", x, _c(0))
        nan_code = builder.select(neg_in, nan_neg, nan_pos)
        return builder.select(builder.icmp_unsigned("==", rr, _c(_QNAN32)), nan_code, c)

    return types.uint32(b, r, cplan), codegen


@intrinsic
def value32(typingctx, c, seen, dplan):
    """``(v, seen | c)``: ``v`` the float32 bits (uint32) of the format's code ``c``, the inverse of :func:`code32`, for
    the plan of ``kernels.elements.decode_plan`` (``mag_bits, all_mag, lo_norm, adj, sh,
    sub_scale, inf_mag, nan_lo, nan_hi, nan_exact, nan_pos, nan_neg``): normal, the exponent and
    mantissa fields re-biased into float32's; subnormal, ``mag * 2**(emin - m)`` (exact in
    float32); infinity and NaN, their float32 patterns (NaN's by sign, from the decode table).
    On 32-bit words only (a code of at most 16 bits; a larger one gives garbage, the caller's
    range check refuses it: ``seen``, a uint32 OR of every code, finds it), so that the loop
    vectorizes 16 lanes to an AVX-512 vector."""
    if not isinstance(c, types.Integer) or not isinstance(seen, types.Integer):
        return None
    if not isinstance(dplan, types.BaseTuple) or len(dplan) != 12:
        return None

    def codegen(context, builder, signature, args):
        ct, st, pt = signature.args
        f32 = ir.FloatType()
        cc = _to_i32(context, builder, args[0], ct)
        k = [
            None if j == 5 else _to_i32(context, builder, builder.extract_value(args[2], j), pt[j])
            for j in range(12)
        ]
        mag_bits, all_mag, lo_norm, adj, sh, _s, inf_mag, nan_lo, nan_hi, nan_exact = k[:10]
        nan_pos, nan_neg = k[10], k[11]
        sub_scale = context.cast(builder, builder.extract_value(args[2], 5), pt[5], types.float32)
        sign = builder.shl(builder.and_(builder.lshr(cc, mag_bits), _c(1)), _c(31))
        mag = builder.and_(cc, all_mag)
        norm = builder.shl(builder.add(mag, adj), sh)
        subn = builder.bitcast(builder.fmul(builder.sitofp(mag, f32), sub_scale), _I32)
        v = builder.or_(builder.select(builder.icmp_unsigned("<", mag, lo_norm), subn, norm), sign)
        inf = builder.or_(_c(0x7F800000), sign)
        v = builder.select(builder.icmp_unsigned("==", mag, inf_mag), inf, v)
        in_nan = builder.and_(
            builder.icmp_unsigned(">=", mag, nan_lo), builder.icmp_unsigned("<=", mag, nan_hi)
        )
        is_nan = builder.or_(in_nan, builder.icmp_unsigned("==", cc, nan_exact))
        # nan_pos, or nan_neg where the sign is set, on i32 words (a select here stays i64)
        flip = builder.and_(builder.xor(nan_pos, nan_neg), builder.ashr(sign, _c(31)))
        nan = builder.xor(nan_pos, flip)
        out = builder.select(is_nan, nan, v)
        acc = builder.or_(_to_i32(context, builder, args[1], st), cc)
        ty = signature.return_type
        return context.make_tuple(builder, ty, [out, acc])

    return types.UniTuple(types.uint32, 2)(c, seen, dplan), codegen
