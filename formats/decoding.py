"""What a float code means: the exact value of every bit pattern (``docs/formats.md``).

The definition of a format's codes, in exact rational arithmetic, for descriptors only (name
lookup and argument checking are the callers'): the exact reference
(:mod:`qemu_arrays.formats.reference`) and ``FloatFormat.values()`` both read codes through here.
"""

from __future__ import annotations

import math
from fractions import Fraction

from qemu_arrays.formats.enums import Specials

__all__ = ["decode_exact", "decode_float"]


def _pow2(k: int) -> Fraction:
    return Fraction(1 << k) if k >= 0 else Fraction(1, 1 << -k)


def decode_exact(code: int, fmt) -> Fraction | float:
    """The exact value of ``code`` in the float format ``fmt``: a Fraction for finite codes
    (zero as ``Fraction(0)``, whatever its sign), ``±inf`` or ``nan`` (floats) for the special
    codes. ``ValueError`` for a code outside ``[0, 2**bits)``."""
    if not 0 <= code < (1 << fmt.bits):
        msg = f"code must be in [0, 2**{fmt.bits}) for {fmt.name}, got {code}"
        raise ValueError(msg)
    e, m, b = fmt.exponent_bits, fmt.mantissa_bits, fmt.bias
    negative = fmt.signed and bool(code >> (e + m))
    magnitude_code = code & ((1 << (e + m)) - 1)
    ef, ff = magnitude_code >> m, magnitude_code & ((1 << m) - 1)
    all_ones_field, all_ones_magnitude = (1 << e) - 1, (1 << (e + m)) - 1
    sp = fmt.specials
    sign = -1.0 if negative else 1.0
    if sp is Specials.IEEE and ef == all_ones_field:
        return sign * math.inf if ff == 0 else math.nan
    if sp is Specials.FN and magnitude_code == all_ones_magnitude:
        return math.nan
    if sp in (Specials.FNUZ, Specials.P3109) and negative and magnitude_code == 0:
        return math.nan
    if sp is Specials.P3109 and magnitude_code == all_ones_magnitude:
        return sign * math.inf
    if ef == 0 and fmt.has_zero:
        value = _pow2(1 - b) * Fraction(ff, 1 << m) if fmt.subnormals else Fraction(0)
    else:
        value = _pow2(ef - b) * (1 + Fraction(ff, 1 << m))
    return -value if negative else value


def decode_float(code: int, fmt) -> float:
    """The value of ``code`` as a float64: exact for every format whose values float64 holds
    (nearest-even otherwise, ±inf beyond its range), ``±0.0`` with the code's sign, ``±inf``,
    ``nan``."""
    value = decode_exact(code, fmt)
    if isinstance(value, float):
        return value
    negative = fmt.signed and bool(code >> (fmt.bits - 1))
    if value == 0:
        return -0.0 if negative and fmt.has_negative_zero else 0.0
    try:
        out = float(abs(value))  # int / int true division: correctly rounded
    except OverflowError:
        out = math.inf
    return -out if value < 0 else out
