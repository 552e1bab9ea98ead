"""Scalar cores of the emulated dot products (``docs/matmul.md``), shared by the CPU and CUDA
kernels: an exact sum of two float64 values rounded once into a format, the exact wide
accumulator, and the truncating multi-term adder of the tensor-core models.

Every function is a ``@numba.njit`` function of primitive values (and, for the wide accumulator,
an int64 array), so that the same source compiles for the CPU and for CUDA. The rounding itself
is always :func:`qemu_arrays.formats.cores.round_magnitude` / ``round_ieee_bits``: this module
only forms the exact value they round.

Why float64 suffices. The matmul inputs are float32 values (every float16, bfloat16 and float32
value, and every value of the formats up to 24 significand bits and 8 exponent bits), so each
product ``a * b`` has at most 48 significand bits and an exponent in [-298, 256]: float64 holds
it exactly. The running sum and the operand it receives are float64 values of the accumulator
format. Their exact sum is ``s + e`` with ``(s, e) = two_sum(a, x)`` (both exact, no overflow);
:func:`round_exact_sum` turns ``s + e`` into an integer significand of 61 or 62 bits whose last
bit is sticky (round to odd), which every rounding mode of at most 59 significand bits (and
stochastic rounding with ``p + r <= 60``) rounds exactly as it would round ``s + e``.
"""

from __future__ import annotations

import math

from numba import njit

from qemu_arrays.formats.bits import bits_f64, f64_bits
from qemu_arrays.formats.cores import (
    FINITE,
    RDN,
    bit_length,
    ieee_bits,
    round_ieee_bits,
    round_magnitude,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache

# its cached functions inline the cores: drop them when a numba source of formats/ changes
purge_stale_cache(__file__)

__all__ = [
    "MASK52",
    "QNAN64",
    "add_round",
    "as_float64",
    "fused_round",
    "fused_term",
    "kulisch_add",
    "kulisch_add_value",
    "kulisch_clear",
    "kulisch_round",
    "kulisch_term",
    "kulisch_total_round",
    "nominal_exponent",
    "round_exact_sum",
    "round_value",
    "split64",
    "two_sum",
]

_JIT = njit(cache=True, nogil=True)
_HOT = njit(cache=True, nogil=True, inline="always")

MASK52 = (1 << 52) - 1
QNAN64 = 0x7FF8000000000000  # the canonical (positive, quiet) NaN: results do not depend on
# the NaN sign a CPU or GPU happens to produce for inf - inf or 0 * inf


@_HOT
def two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth; finite sums)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@_HOT
def split64(x):
    """``(sign, M, E)`` of a finite float64: ``|x| = M * 2**E``, ``M < 2**53``."""
    b: int = f64_bits(x)  # type: ignore[call-arg]  # an @intrinsic
    sign = (b >> 63) & 1
    ef = (b >> 52) & 0x7FF
    mf = b & MASK52
    if ef == 0:
        return sign, mf, -1074
    return sign, mf | (1 << 52), ef - 1075


@_HOT
def nominal_exponent(x, emin):
    """``max(floor(log2 |x|), emin)`` of a finite non-zero float64 (read from its bits)."""
    b: int = f64_bits(x)  # type: ignore[call-arg]  # an @intrinsic
    ef = (b >> 52) & 0x7FF
    if ef == 0:
        mf = b & MASK52
        e = -1075
        while mf > 0:
            mf >>= 1
            e += 1
    else:
        e = ef - 1023
    return max(e, emin)


@_JIT
def round_value(x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r):
    """Round the float64 value ``x`` (exact) into the format: ``(status, sign, kept, q)``.
    NaN is the canonical positive NaN."""
    b: int = f64_bits(x)  # type: ignore[call-arg]  # an @intrinsic
    if x != x:
        b = QNAN64
    return round_ieee_bits(b, 11, 52, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)


@_JIT
def round_exact_sum(s, e, scale_exp, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r):
    """Round the exact value ``(s + e) * 2**scale_exp`` into the format, where ``(s, e)`` is a
    :func:`two_sum` pair (finite, ``s != 0``, ``|e| <= ulp(s) / 2``).

    The value is written as ``M * 2**E`` with ``M`` of 61-62 bits: ``s``'s significand shifted
    left by 9 bits plus ``e`` on the same grid, truncated, with the last bit set when anything
    was cut (round to odd). Rounding ``M * 2**E`` to at most 59 significand bits (or
    stochastically with ``p + r <= 60``) gives the rounding of ``s + e``.
    """
    sign, ms, es = split64(s)
    M = ms << 9
    E = es - 9
    if e != 0.0:
        esign, me, ee = split64(e)
        d = ee - E
        sticky = 0
        if d >= 0:
            ei = me << d  # |e| <= 2**(es - 1): at most 2**8 on this grid
        elif d > -63:
            ei = me >> (-d)
            sticky = 1 if (me & ((1 << (-d)) - 1)) != 0 else 0
        else:
            ei = 0
            sticky = 1
        if esign == sign:
            M = M + ei
        else:
            M = M - ei - sticky
        M |= sticky
    return round_magnitude(
        sign, M, E + scale_exp, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
    )


@_JIT
def add_round(a, x, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r):
    """The exact sum ``a + x`` of two float64 values rounded once into the format:
    ``(status, sign, kept, q)`` as :func:`qemu_arrays.formats.cores.round_magnitude`.

    IEEE 754 semantics: NaN in, ``inf - inf`` -> NaN (canonical); an infinity -> that infinity
    (then the format's overflow policy); an exact zero sum is ``+0`` except under ``DOWN``
    (``-0``), and ``x + x`` keeps the sign of a zero ``x``. A finite sum beyond float64's range
    overflows (no accumulator reaches it).
    """
    s = a + x
    if s != s:
        return round_value(s, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
    if s - s != 0.0:  # s is infinite
        if a - a != 0.0 or x - x != 0.0:  # an infinite operand
            return round_value(s, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
        # finite operands whose float64 sum overflows: halve them (exact) and scale back
        s2, e2 = two_sum(a * 0.5, x * 0.5)
        return round_exact_sum(s2, e2, 1, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
    if s == 0.0:
        # exact zero: float64's sign is IEEE's under nearest-even; DOWN gives -0 unless both
        # operands are +0
        neg = f64_bits(s) < 0  # type: ignore[call-arg]  # an @intrinsic
        if rnd == RDN:
            neg = not (a == 0.0 and x == 0.0 and f64_bits(a) >= 0 and f64_bits(x) >= 0)
        z = -0.0 if neg else 0.0
        return round_value(z, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
    s, e = two_sum(a, x)
    if e == 0.0:
        return round_value(s, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
    return round_exact_sum(s, e, 0, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)


# ---- the exact wide accumulator (a Kulisch accumulator of 32-bit digits) -----------------------
#
# ``limbs`` (int64) holds the integer sum of signed 32-bit digits: the value is
# ``sum(limbs[i] * 2**(32 * i)) * 2**base``. Each addition of a float64 value adds at most two
# digits to a limb, so 2**30 additions cannot overflow a limb before :func:`kulisch_round`
# normalises it. The caller sizes ``limbs`` and ``base`` to the values it adds.


@_HOT
def kulisch_clear(limbs, n):
    for i in range(n):
        limbs[i] = 0


@_HOT
def kulisch_add(limbs, base, sign, M, E):
    """Add ``(-1)**sign * M * 2**E`` (``M < 2**53``, ``E >= base``) to the accumulator."""
    pos = E - base
    li = pos >> 5
    off = pos & 31
    lo = (M & 0xFFFFFFFF) << off  # < 2**63
    hi = (M >> 32) << off  # < 2**52
    d0 = lo & 0xFFFFFFFF
    d1 = (lo >> 32) + (hi & 0xFFFFFFFF)
    d2 = hi >> 32
    if sign == 1:
        limbs[li] -= d0
        limbs[li + 1] -= d1
        limbs[li + 2] -= d2
    else:
        limbs[li] += d0
        limbs[li + 1] += d1
        limbs[li + 2] += d2


@_HOT
def kulisch_add_value(limbs, base, x):
    """Add the finite float64 ``x`` (its exact value; zero adds nothing)."""
    if x != 0.0:
        sign, M, E = split64(x)
        kulisch_add(limbs, base, sign, M, E)


@_JIT
def kulisch_round(limbs, n, base, zero_sign, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf,
                  u, r):  # fmt: skip
    """Round the exact value held in ``limbs[:n]`` into the format (an exact zero is ``-0``
    when ``zero_sign`` is 1, else ``+0``).
    Leaves ``limbs`` normalised (digits in [0, 2**32)). The caller keeps the magnitude below
    ``2**(32 * (n - 1) + base)``."""
    carry = 0
    for i in range(n):
        v = limbs[i] + carry
        limbs[i] = v & 0xFFFFFFFF
        carry = v >> 32  # arithmetic shift: floor division by 2**32
    sign = 0
    if carry < 0:  # negative (carry == -1): the magnitude is the two's complement
        sign = 1
        c = 1
        for i in range(n):
            v = (limbs[i] ^ 0xFFFFFFFF) + c
            limbs[i] = v & 0xFFFFFFFF
            c = v >> 32
    top = n - 1
    while top >= 0 and limbs[top] == 0:
        top -= 1
    if top < 0:
        return round_value(
            -0.0 if zero_sign == 1 else 0.0, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
        )
    # the leading 61 bits as M, what lies below them as one sticky bit (round to odd)
    M = limbs[top]
    nbits = bit_length(M)
    E = base + 32 * top
    i = top - 1
    while i >= 0 and nbits + 32 <= 61:
        M = (M << 32) | limbs[i]
        nbits += 32
        E -= 32
        i -= 1
    sticky = 0
    if i >= 0:
        need = 61 - nbits
        nxt = limbs[i]
        if need > 0:
            M = (M << need) | (nxt >> (32 - need))
            E -= need
            if (nxt & ((1 << (32 - need)) - 1)) != 0:
                sticky = 1
        elif nxt != 0:
            sticky = 1
        i -= 1
        while i >= 0 and sticky == 0:
            if limbs[i] != 0:
                sticky = 1
            i -= 1
    M |= sticky
    return round_magnitude(sign, M, E, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)


@_HOT
def kulisch_term(limbs, base, x, nan, pinf, ninf):
    """Add the float64 term ``x`` exactly to the accumulator (a finite non-zero ``x``), or note
    it in the flags ``(nan, pinf, ninf)`` (a NaN, +inf or -inf term); the flags, updated."""
    if x - x == 0.0:
        if x != 0.0:
            sign, M, E = split64(x)
            kulisch_add(limbs, base, sign, M, E)
    elif x != x:
        nan = True
    elif x > 0:
        pinf = True
    else:
        ninf = True
    return nan, pinf, ninf


@_JIT
def kulisch_total_round(total, nan, pinf, ninf, limbs, n, base, m, emin, emax, sigmax, sub, hz,
                        sg, sp, rnd, ovf, u, r):  # fmt: skip
    """``R(total + S)`` with one rounding: ``S`` the exact sum of terms held in ``limbs[:n]``
    and the flags of :func:`kulisch_term`, ``total`` a float64 (the running value of the exact
    blocks, else 0). Specials as IEEE (a NaN term, +inf and -inf, ``inf - inf``: NaN); an exact
    zero is ``+0``, except under ``DOWN`` when it is not ``+0 + +0``. ``(status, sign, kept,
    q)``; ``limbs`` is left holding ``total + S`` when they are finite."""
    if nan or pinf or ninf or total - total != 0.0:
        special = math.nan if (nan or (pinf and ninf)) else (math.inf if pinf else -math.inf)
        if not (nan or pinf or ninf):
            special = 0.0
        return add_round(total, special, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r)
    zs = rnd == RDN and not (total == 0.0 and f64_bits(total) >= 0)  # type: ignore[call-arg]
    if total != 0.0:
        sign, M, E = split64(total)
        kulisch_add(limbs, base, sign, M, E)
    return kulisch_round(limbs, n, base, 1 if zs else 0, m, emin, emax, sigmax, sub, hz, sg, sp,
                         rnd, ovf, u, r)  # fmt: skip


# ---- the truncating multi-term adder of the tensor-core models ---------------------------------


@_HOT
def fused_term(x, emax_grid):
    """``sign * floor(|x| * 2**(-emax_grid))``: a finite float64 term truncated (magnitude)
    onto the grid ``2**emax_grid``, as an int64 (the caller keeps it below 2**62)."""
    if x == 0.0:
        return 0
    sign, M, E = split64(x)
    d = E - emax_grid
    if d >= 0:
        v = M << d
    elif d > -63:
        v = M >> (-d)
    else:
        v = 0
    return -v if sign == 1 else v


@_JIT
def fused_round(S, grid_exp, p_out, emin_out, emax_out, rnd):
    """The float64 value of ``S * 2**grid_exp`` rounded to ``p_out`` significand bits on a
    binary32-range grid (``emin_out``/``emax_out``: -126/127) with ``rnd``; beyond the range:
    ±inf (the tensor-core models' overflow, whatever the rounding mode)."""
    if S == 0:
        return 0.0
    sign = 1 if S < 0 else 0
    mag = -S if S < 0 else S
    sigmax = (1 << p_out) - 1
    st, sg, kept, q = round_magnitude(
        sign, mag, grid_exp, p_out - 1, emin_out, emax_out, sigmax, 1, 1, 1, 0, rnd, 0, 0, 32
    )
    # nearest modes overflow to inf in round_magnitude; toward zero stops at max there, and
    # the models give inf for any magnitude of 2**(emax_out + 1) or more
    if st != FINITE:
        return math.inf if sign == 0 else -math.inf
    if grid_exp + bit_length(mag) - 1 > emax_out:
        return math.inf if sign == 0 else -math.inf
    return as_float64(st, sg, kept, q)


@_HOT
def as_float64(st, sign, kept, q):
    """The float64 value of a rounded result (a format whose values float64 holds)."""
    return bits_f64(ieee_bits(st, sign, kept, q, 11, 52))  # type: ignore[call-arg]
