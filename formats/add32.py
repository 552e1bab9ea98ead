"""One rounded addition of float32 values on float32 words (the CPU matmul's ``sel32`` path).

``R(a0 + x)`` for float32 values ``a0`` and ``x`` into a format of at most 23 significand bits
inside float32's range, in selects only so that a kernel's loop over lanes vectorizes on 32-bit
words (twice float64's lanes):

* :func:`sum_odd32`: the float32 sum corrected by TwoSum to the exact sum rounded to odd at 24
  bits (an exact sum is unchanged; a float32 addition whose result is subnormal is exact);
* then :func:`round_sel32`: the format's rounding of those bits by integer operations and
  selects (nearest-even, toward zero, up, down, stochastic with the ``r``-bit random integer),
  for results in the format's normal range.

Why this is the rounding of the exact sum (``q = 24``, ``p`` the format's precision; below the
format's normal range its precision is smaller, which only helps): the value rounded to odd at
``q`` bits has the exact sum's sign and binade, its first ``q - 1`` bits are the exact sum's
(truncated) bits and its last bit is set exactly when a bit below them is set (the sticky bit).

* nearest-even: rounding to odd at ``q >= p + 2`` bits, then to nearest at ``p`` bits, is the
  nearest rounding of the exact value (Boldo and Melquiond): ``p <= 22``;
* toward zero, up, down: they read the truncation at ``p`` bits and whether anything below it is
  set; both are kept for ``p <= q - 1``: ``p <= 23``;
* stochastic with ``r`` random bits: up exactly when ``u`` is below the remainder's first ``r``
  bits under the kept LSB (the general core's ``t = floor(rem * 2**r / ulp)``); those are among
  the ``q - 1`` exact bits when ``p + r <= q - 1``: ``p + r <= 23``. With ``p + r = 24`` the
  ``r``-th bit would be the sticky bit, set whenever any bit below it is, where the exact bit
  may be 0, so the path is refused.

:func:`add_round32` composes the two and reports a lane it cannot decide (a float32 sum that is
not finite, where the exact sum may be finite; a result below the format's normal range, except
an exact zero where the format keeps both signed zeros; an overflow; a negative value into an
unsigned format) for the caller's general core
(:func:`qemu_arrays.formats.accumulate.add_round`). :func:`sel32_ok` is the precision rule,
:func:`sel32_consts` the format's constants.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from qemu_arrays.formats.bits import f32_bits
from qemu_arrays.formats.codes import RDN, RNE, RTZ, RUP, SR
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = ["MARK32", "add_round32", "round_sel32", "sel32_consts", "sel32_ok", "sum_odd32"]

#: the float32 bits a kernel writes for a lane left to the general core (a signalling NaN: no
#: decided lane is a NaN)
MARK32 = np.uint32(0x7FA0C0FE)
_MAG = np.uint32(0x7FFFFFFF)
_SIGN = np.uint32(0x80000000)


def sel32_ok(precision: int, rnd: int, r: int) -> bool:
    """Whether rounding to odd at 24 bits keeps the format's rounding of the exact sum (the
    module doc): nearest-even ``p <= 22``, toward zero/up/down ``p <= 23``, stochastic
    ``p + r <= 23``."""
    if rnd == RNE:
        return precision <= 22
    if rnd in (RTZ, RUP, RDN):
        return precision <= 23
    return rnd == SR and r >= 1 and precision + r <= 23


@intrinsic
def sum_odd32(typingctx, a, x):
    """The float32 bits (uint32) of ``a + x`` (float32 values) rounded to odd at 24 bits: the
    float32 sum ``s``, its error ``e`` by TwoSum, and ``s``'s bits stepped by one toward ``e``
    when ``e != 0`` and the last bit is even. Where ``s`` is not finite ``e`` is a NaN and the
    bits are ``s``'s."""
    if not (isinstance(a, types.Float) and a.bitwidth == 32 and a == x):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        f0 = ir.Constant(ir.FloatType(), 0.0)
        av, xv = args
        s = builder.fadd(av, xv)
        bb = builder.fsub(s, av)
        e = builder.fadd(builder.fsub(av, builder.fsub(s, bb)), builder.fsub(xv, bb))
        b = builder.bitcast(s, i32)
        nz = builder.fcmp_ordered("!=", e, f0)
        even = builder.icmp_unsigned(
            "==", builder.and_(b, ir.Constant(i32, 1)), ir.Constant(i32, 0)
        )
        away = builder.icmp_unsigned(
            "==", builder.fcmp_ordered(">", e, f0), builder.fcmp_ordered(">", s, f0)
        )
        step = builder.select(away, ir.Constant(i32, 1), ir.Constant(i32, -1))
        return builder.select(builder.and_(nz, even), builder.add(b, step), b)

    return types.uint32(a, x), codegen


def sel32_consts(p) -> tuple[int, ...] | None:
    """The constants of :func:`round_sel32` for the format parameters ``p`` (float32 layout):
    ``(sh, low, half - 1, m0, lo_mag, max_mag, unsigned, zero_ok)``, or None for a format
    outside float32's normal range or of 23 or more mantissa bits. ``zero_ok``: the format
    keeps both signed zeros (an exact zero is then decided in the loop)."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = (int(v) for v in p)
    if not (0 <= m <= 22 and emin >= -126 and emax <= 127 and hz == 1):
        return None
    sh = 23 - m
    max_mag = ((emax + 127) << 23) | ((sigmax - (1 << m)) << sh)
    neg_zero = sg == 1 and sp not in (2, 4)
    return (sh, (1 << sh) - 1, (1 << (sh - 1)) - 1, int(m == 0), (emin + 127) << 23, max_mag,
            int(sg == 0), int(neg_zero))  # fmt: skip


def _mode_of(mode_type):
    lit = getattr(mode_type, "literal_value", None)
    return lit if lit in (RNE, RTZ, RUP, RDN, SR) else None


@intrinsic
def round_sel32(typingctx, b, c, mode, u, r):
    """The float32 with bits ``b`` rounded into the format of ``c`` (:func:`sel32_consts`)
    under ``mode`` (a literal: RNE, RTZ, RUP, RDN, or SR with the ``r``-bit random integer
    ``u``, ``r`` below the dropped bits), where the result is a normal number of the format:
    ``(decided, float32 bits)`` on 32-bit words (``decided`` an i1 as a boolean). Not decided:
    a magnitude below the format's normal range (zeros: see ``zero_ok``), an overflow, an
    infinity or NaN, a negative value into an unsigned format. The bits of
    :func:`qemu_arrays.formats.cores.round_bits_fast`, in selects."""
    if not isinstance(b, types.Integer) or not isinstance(c, types.BaseTuple) or len(c) != 8:
        return None
    md = _mode_of(mode)
    if md is None:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)

        def k(v):
            return ir.Constant(i32, v - (1 << 32) if v >> 31 else v)

        def arg(i):
            v = context.cast(builder, args[i], signature.args[i], types.int64)
            return builder.trunc(v, i32)

        ct = signature.args[1]
        sh, low, half_m1, m0, lo_mag, max_mag, uns, zok = (
            builder.trunc(context.cast(builder, builder.extract_value(args[1], i), ct[i],
                                       types.int64), i32)
            for i in range(8)
        )  # fmt: skip
        x = arg(0)
        mag = builder.and_(x, k(0x7FFFFFFF))
        neg = builder.icmp_signed("<", x, k(0))
        trunc = builder.and_(mag, builder.not_(low))
        one = builder.add(low, k(1))
        if md == RNE:
            odd = builder.or_(builder.and_(builder.lshr(mag, sh), k(1)), m0)
            q = builder.and_(builder.add(builder.add(mag, half_m1), odd), builder.not_(low))
        elif md == RTZ:
            q = trunc
        elif md in (RUP, RDN):
            inexact = builder.icmp_unsigned("!=", builder.and_(mag, low), k(0))
            side = neg if md == RDN else builder.not_(neg)
            q = builder.select(builder.and_(inexact, side), builder.add(trunc, one), trunc)
        else:  # up when u < the remainder's first r bits (r < sh)
            t = builder.lshr(builder.and_(mag, low), builder.sub(sh, arg(4)))
            up = builder.icmp_unsigned("<", arg(3), t)
            q = builder.select(up, builder.add(trunc, one), trunc)
        ok = builder.and_(builder.icmp_unsigned(">=", mag, lo_mag),
                          builder.icmp_unsigned("<=", q, max_mag))  # fmt: skip
        ok = builder.and_(ok, builder.or_(builder.icmp_unsigned("==", uns, k(0)),
                                          builder.not_(neg)))  # fmt: skip
        res = builder.or_(builder.and_(x, k(0x80000000)), q)
        zero = builder.and_(builder.icmp_unsigned("==", mag, k(0)),
                            builder.icmp_unsigned("!=", zok, k(0)))  # fmt: skip
        ok = builder.or_(ok, zero)
        res = builder.select(zero, x, res)
        return context.make_tuple(builder, signature.return_type, (ok, res))

    return types.Tuple((types.boolean, types.uint32))(b, c, mode, u, r), codegen


@njit(cache=True, nogil=True, inline="always")
def add_round32(a0, x, c, mode, u, r):
    """``R(a0 + x)`` (float32 values) into the format of ``c`` (:func:`sel32_consts`) under
    ``mode`` (a literal: RNE, RTZ, RUP, RDN or SR with the ``r``-bit random integer ``u``),
    where :func:`sel32_ok` holds: ``(decided, float32 bits)``. Not decided: what
    :func:`round_sel32` leaves, which includes a float32 sum that is not finite (the exact sum
    may be finite; :func:`sum_odd32` leaves its bits, above every finite result). An exact zero
    sum has IEEE's sign (under DOWN, -0 unless both operands are +0)."""
    b: int = sum_odd32(a0, x)  # type: ignore[call-arg]  # an @intrinsic
    if mode == RDN:
        z = (b & _MAG) == 0
        b = _SIGN if z & ((f32_bits(a0) | f32_bits(x)) != 0) else b
    ok, res = round_sel32(b, c, mode, u, r)
    return ok, res
