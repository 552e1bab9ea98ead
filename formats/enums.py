"""The closed sets shared by every layer: rounding modes, overflow policies, special-value
layouts and block scale rules.

Their integer values are what the scalar cores receive; the kernels' code tables are derived from
these members in :mod:`qemu_arrays.formats.codes`, never renumbered by hand.
"""

from __future__ import annotations

import enum

__all__ = ["Overflow", "Rounding", "ScaleRule", "Specials"]


class Rounding(enum.IntEnum):
    """Rounding modes, one enum for every format (integer codes are passed to the kernels)."""

    NEAREST_EVEN = 0
    """Round to nearest, ties to the value with an even last digit (IEEE roundTiesToEven)."""
    NEAREST_AWAY = 1
    """Round to nearest, ties away from zero (IEEE roundTiesToAway)."""
    TOWARD_ZERO = 2
    """Truncate the magnitude (IEEE roundTowardZero)."""
    UP = 3
    """Toward +infinity (IEEE roundTowardPositive)."""
    DOWN = 4
    """Toward -infinity (IEEE roundTowardNegative)."""
    TO_ODD = 5
    """Truncate, then set the last digit if anything was discarded (von Neumann rounding)."""
    STOCHASTIC = 6
    """Round away from zero with probability equal to the discarded fraction of the gap
    (truncated to ``random_bits`` bits): with ``rbits=`` the caller's bits and the carry rule
    ``F + u >= 2^r`` (PTX ``cvt.rs``, gfloat ``StochasticFastest``), else the counter-based
    generator of ``docs/formats.md``."""
    NEAREST_ZERO = 7
    """Round to nearest, ties toward zero (APyTypes ``TIES_ZERO``)."""
    NEAREST_ODD = 8
    """Round to nearest, ties to the value with an odd last digit (APyTypes ``TIES_ODD``)."""
    NEAREST_UP = 9
    """Round to nearest, ties toward +infinity (APyTypes ``TIES_POS``)."""
    NEAREST_DOWN = 10
    """Round to nearest, ties toward -infinity (APyTypes ``TIES_NEG``)."""
    AWAY_FROM_ZERO = 11
    """Round the magnitude up whenever anything is discarded (APyTypes ``TO_AWAY``)."""
    JAM = 12
    """Jamming: truncate and always set the last digit when the destination grid is coarser
    than the input's, even for exact values (APyTypes ``JAM``); overflow gives ±max."""
    STOCHASTIC_EQUAL = 13
    """Equal-probability stochastic rounding: an inexact value rounds away from zero with
    probability 1/2, whatever its fraction (APyTypes ``STOCH_EQUAL``); the deciding bit is the
    top one of the element's ``random_bits``-bit random integer."""

    @property
    def stochastic(self) -> bool:
        """Whether the mode draws random bits (``seed``/``rbits`` apply)."""
        return self in (Rounding.STOCHASTIC, Rounding.STOCHASTIC_EQUAL)


class Overflow(enum.IntEnum):
    """What happens to values beyond the largest finite value, to infinities and to NaN."""

    OWN = 0
    """The format's own encoding (OCP behaviour): overflow becomes inf where the format has inf,
    else NaN where it has NaN, else saturates. Directed modes that round toward zero at the
    overflow (``TOWARD_ZERO``, ``TO_ODD``, ``UP`` for negatives, ``DOWN`` for positives) give
    ±max as IEEE 754 requires. NaN input to a format without NaN raises ``ValueError``."""
    SATURATE = 1
    """Clamp to ±max (PTX ``.satfinite``): overflow and ±inf give ±max; NaN stays NaN where the
    format has NaN, and raises ``ValueError`` otherwise."""
    ML_DTYPES = 2
    """Reproduce the installed ml_dtypes' casts: overflow as ``OWN`` under round-to-nearest; NaN
    input to a format without NaN follows ml_dtypes; where ml_dtypes releases differ (float64
    input rounded through float32, float32 subnormals into E8M0), the rules of the installed
    release, found by probing it (``qemu_arrays.formats.ml_dtypes_rules``, ``docs/formats.md``)."""


class Specials(enum.IntEnum):
    """Which codes are infinities and NaNs."""

    IEEE = 0
    """All-ones exponent field: mantissa 0 is ±inf, any other mantissa is NaN (float16, E5M2)."""
    FN = 1
    """Finite, with NaN: no inf; the all-ones magnitude code is NaN (OCP E4M3, E8M0)."""
    FNUZ = 2
    """Finite, unsigned zero: no inf, no -0; the negative-zero code is the only NaN."""
    FINITE = 3
    """Finite only: every code is a number (OCP FP6, FP4)."""
    P3109 = 4
    """IEEE P3109 extended: the negative-zero code is the only NaN, the all-ones magnitude codes
    are ±inf, no -0."""


class ScaleRule(enum.IntEnum):
    """How a block's largest magnitude ``amax`` becomes a power-of-two (E8M0) block scale.

    ``emax`` is the exponent of the element format's largest binade, ``m`` its mantissa bits.
    """

    FLOOR = 0
    """OCP MX v1.0: ``2^(floor(log2 amax) - emax)``; the block maximum may exceed the element
    maximum after scaling and then saturates."""
    CEIL = 1
    """``amax`` rounded *up* to ``m + 1`` significant bits first, then as ``FLOOR``: the scale
    moves up a binade when ``amax`` would round past the top of its binade."""
    EVEN = 2
    """``amax`` rounded to nearest (ties to even) at ``m + 1`` significant bits, then as
    ``FLOOR`` (the "even" rule of torchao/MAX)."""
    RCEIL = 3
    """NVIDIA's rule: the smallest power of two ``2^e`` with ``amax / 2^e <= max`` of the
    element format, i.e. ``ceil(log2(amax / max))``; no element ever saturates."""
    CEIL_POW2 = 4
    """torchao's ``ScaleCalculationMode.CEIL``: ``amax`` rounded *up* to a power of two, i.e.
    ``2^(ceil(log2 amax) - emax)``; one binade above ``FLOOR`` unless ``amax`` is a power of two
    (not this library's ``CEIL``, which rounds at ``m + 1`` bits)."""
    RFLOOR = 5
    """``amax / max`` rounded *down* to a power of two, ``floor(log2(amax / max))``: CUDA's
    ``cvt.rz.satfinite.ue8m0x2.f32`` of the quotient (``__nv_cvt_float_to_e8m0`` with
    ``cudaRoundZero``); the block maximum saturates unless its significand is at least the
    element maximum's."""
    RHALF_UP = 6
    """``amax / max`` rounded to the *nearest* power of two in value, ties (``1.5 * 2^k``) up:
    what a cast of the quotient to ml_dtypes' ``float8_e8m0fnu`` gives (ml_dtypes 0.7)."""
