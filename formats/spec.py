"""Number-format descriptors and the enums shared by every layer.

A descriptor stores only the parameters a specification gives (bit counts, bias, which special
values exist); everything else is a derived property named after ``numpy.finfo``/``iinfo``.
Descriptors are frozen, hashable, keyword-only dataclasses, so they can key caches and be
compared by value.

Float layout (most significant bit first): ``[sign] exponent mantissa``. A code with exponent
field ``E`` and mantissa field ``F`` means ``(-1)^s * 2^(E - bias) * (1 + F / 2^m)`` when ``E``
is a normal field, and ``(-1)^s * 2^(1 - bias) * (F / 2^m)`` when ``E == 0`` and the format has
subnormals. A format without zero (``has_zero=False``, e.g. E8M0) treats ``E == 0`` as a normal
binade too. Which codes are inf/NaN is given by :class:`Specials`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from qemu_arrays.formats.enums import Overflow, Rounding, Specials

__all__ = [
    "FloatFormat",
    "FormatParams",
    "IntFormat",
    "Overflow",
    "Rounding",
    "Specials",
]


_INT_LIMIT = 64
#: the largest |bias|: exponents stay small integers (the kernels' int64 arithmetic, the exact
#: Fractions of max_exact), and float64 (2^-1074 ... 2^1024) lies well inside
_BIAS_LIMIT = 1 << 14


class FormatParams(NamedTuple):
    """The primitive parameters of a float format that the scalar cores take
    (:mod:`qemu_arrays.formats.cores`), as one argument: numba compiles a NamedTuple of ints, so
    one compiled kernel serves every format."""

    mantissa_bits: int
    emin: int
    """Exponent of the smallest normal binade."""
    emax: int
    """Exponent of the largest finite binade."""
    max_significand: int
    """The largest finite significand, an integer with ``mantissa_bits`` fraction bits."""
    subnormals: int
    has_zero: int
    signed: int
    specials: int
    """The :class:`Specials` code."""
    exponent_bits: int
    bias: int


def _pow2_float(k: int) -> float:
    """``2.0 ** k`` as a float64: 0 below its range, ``inf`` above it."""
    return math.ldexp(1.0, k) if k < 1024 else math.inf


def check_name(name) -> None:
    """A format's display name must be a str."""
    if not isinstance(name, str):
        msg = f"name must be a str, got {name!r} ({type(name).__name__}); hint: name='e4m3'"
        raise TypeError(msg)


def _positive_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"{name} must be an int in [{lo}, {hi}], got {value!r} ({type(value).__name__}); "
            "hint: check the format's bit layout"
        )
        raise TypeError(msg)
    if not lo <= value <= hi:
        msg = f"{name} must be in [{lo}, {hi}], got {value}; hint: check the format's bit layout"
        raise ValueError(msg)
    return value


@dataclass(frozen=True, kw_only=True)
class FloatFormat:
    """A binary floating-point format (multiplicative quantization: step proportional to |x|).

    Parameters
    ----------
    exponent_bits, mantissa_bits
        Field widths. ``mantissa_bits`` excludes the implicit leading bit.
    bias
        Exponent bias; default ``2**(exponent_bits - 1) - 1`` (IEEE).
    signed
        Whether there is a sign bit.
    subnormals
        Whether exponent field 0 holds subnormals (gradual underflow). When False and the
        format has zero, exponent field 0 holds only zero (flush to zero).
    has_zero
        False for formats such as E8M0 whose exponent field 0 is an ordinary binade.
    specials
        Which codes are inf and NaN, see :class:`Specials`.
    name
        Display name; not part of the value (two descriptors with equal fields are equal).
    """

    exponent_bits: int
    mantissa_bits: int
    bias: int = None  # type: ignore[assignment]  # None: IEEE's 2**(e-1) - 1, set in __post_init__
    signed: bool = True
    subnormals: bool = True
    has_zero: bool = True
    specials: Specials = Specials.IEEE
    name: str = field(default="", compare=False)

    def __post_init__(self):
        e = _positive_int("exponent_bits", self.exponent_bits, 1, 11)
        m = _positive_int("mantissa_bits", self.mantissa_bits, 0, 52)
        if self.bias is None:
            object.__setattr__(self, "bias", (1 << (e - 1)) - 1)
        elif isinstance(self.bias, bool) or not isinstance(self.bias, int):
            msg = (
                f"bias must be an int or None, got {self.bias!r} ({type(self.bias).__name__}); "
                "hint: None gives the IEEE bias 2**(exponent_bits - 1) - 1"
            )
            raise TypeError(msg)
        elif not -_BIAS_LIMIT <= self.bias <= _BIAS_LIMIT:
            msg = (
                f"bias must be in [{-_BIAS_LIMIT}, {_BIAS_LIMIT}], got {self.bias}; formats "
                "beyond that range hold no float64 value but 0 or inf; hint: None gives the "
                f"IEEE bias {(1 << (e - 1)) - 1}"
            )
            raise ValueError(msg)
        try:
            specials = Specials(self.specials)
        except ValueError:
            allowed = ", ".join(s.name for s in Specials)
            msg = (
                f"specials must be one of {allowed}, got {self.specials!r}; hint: "
                "specials=qemu_arrays.Specials.FN"
            )
            raise ValueError(msg) from None
        object.__setattr__(self, "specials", specials)
        for flag in ("signed", "subnormals", "has_zero"):
            if not isinstance(getattr(self, flag), bool):
                msg = f"{flag} must be a bool, got {getattr(self, flag)!r}; hint: True or False"
                raise TypeError(msg)
        check_name(self.name)
        bits = self.bits
        if bits > 64:
            msg = (
                f"the format has {bits} bits, at most 64 are supported; hint: fewer "
                "exponent_bits or mantissa_bits"
            )
            raise ValueError(msg)
        if not self.has_zero and self.subnormals:
            msg = (
                "subnormals=True needs has_zero=True (exponent field 0 cannot be both "
                "subnormal and an ordinary binade); hint: pass subnormals=False"
            )
            raise ValueError(msg)
        if not self.has_zero and self.specials in (Specials.FNUZ, Specials.P3109):
            msg = (
                f"specials={specials.name} puts NaN on the zero code, which needs has_zero=True; "
                "hint: Specials.FN"
            )
            raise ValueError(msg)
        if not self.signed and self.specials in (Specials.FNUZ, Specials.P3109):
            msg = (
                f"specials={specials.name} puts NaN on the negative-zero code, which needs "
                "signed=True; hint: use Specials.FN for unsigned formats"
            )
            raise ValueError(msg)
        if self.specials is Specials.IEEE and e < 2:
            msg = (
                "specials=Specials.IEEE reserves a whole exponent field for inf/NaN: needs "
                f"exponent_bits >= 2, got {e}; hint: Specials.FN or FINITE"
            )
            raise ValueError(msg)
        if self.specials in (Specials.FN, Specials.P3109) and e == 1 and m == 0:
            msg = (
                f"specials=Specials.{specials.name} needs exponent_bits + mantissa_bits >= 2: with "
                "1 exponent bit and no mantissa it leaves no finite non-zero value; hint: "
                "exponent_bits=2"
            )
            raise ValueError(msg)
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        suffix = {
            Specials.IEEE: "",
            Specials.FN: "fn",
            Specials.FNUZ: "fnuz",
            Specials.FINITE: "fn",
            Specials.P3109: "p3109",
        }[self.specials]
        if not self.signed:
            suffix += "u"
        b = "" if self.bias == (1 << (self.exponent_bits - 1)) - 1 else f"b{self.bias}"
        return f"float{self.bits}_e{self.exponent_bits}m{self.mantissa_bits}{b}{suffix}"

    # ---- derived values -------------------------------------------------------------------
    kind = "float"

    @property
    def bits(self) -> int:
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def has_inf(self) -> bool:
        return self.specials in (Specials.IEEE, Specials.P3109)

    @property
    def has_nan(self) -> bool:
        if self.specials is Specials.IEEE:
            return self.mantissa_bits > 0  # with no mantissa the all-ones field is only inf
        return self.specials is not Specials.FINITE

    @property
    def has_negative_zero(self) -> bool:
        return (
            self.signed and self.has_zero and self.specials not in (Specials.FNUZ, Specials.P3109)
        )

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal binade."""
        return (1 if self.has_zero else 0) - self.bias

    @property
    def _top(self) -> tuple[int, int]:
        """(exponent, significand as an integer with mantissa_bits fraction bits) of max."""
        e, m = self.exponent_bits, self.mantissa_bits
        top_field = (1 << e) - 1
        full = (1 << (m + 1)) - 1
        if self.specials is Specials.IEEE:
            return top_field - 1 - self.bias, full
        if self.specials in (Specials.FN, Specials.P3109):
            if m == 0:
                return top_field - 1 - self.bias, 1
            return top_field - self.bias, full - 1
        return top_field - self.bias, full

    @property
    def emax(self) -> int:
        """Exponent of the largest finite binade."""
        return self._top[0]

    @property
    def maxexp(self) -> int:
        """As ``numpy.finfo.maxexp``: the smallest positive power of 2 that overflows."""
        return self.emax + 1

    @property
    def minexp(self) -> int:
        """As ``numpy.finfo.minexp``: the exponent of the smallest normal number."""
        return self.emin

    def _exact(self, significand: int, exponent: int) -> Fraction:
        return Fraction(significand) * Fraction(2) ** exponent

    @property
    def max_exact(self) -> Fraction:
        e, sig = self._top
        return self._exact(sig, e - self.mantissa_bits)

    @property
    def max(self) -> float:
        """The largest finite value as a float64 (``inf`` when it exceeds float64's range)."""
        try:
            return float(self.max_exact)
        except OverflowError:
            return math.inf

    @property
    def min(self) -> float:
        """Most negative finite value (``0`` or the smallest positive value when unsigned)."""
        if self.signed:
            return -self.max
        return 0.0 if self.has_zero else self.smallest_normal

    @property
    def smallest_normal(self) -> float:
        return _pow2_float(self.emin)

    @property
    def smallest_subnormal(self) -> float:
        if not self.subnormals or self.mantissa_bits == 0:
            return self.smallest_normal
        return _pow2_float(self.emin - self.mantissa_bits)

    @property
    def eps(self) -> float:
        return math.ldexp(1.0, -self.mantissa_bits)

    @property
    def precision(self) -> int:
        """Significand bits including the implicit one."""
        return self.mantissa_bits + 1

    def values(self):
        """Every distinct representable finite value, ascending, as a float64 numpy array.

        Only for formats of at most 16 bits. Zero appears once (-0 is not listed separately).
        """
        import math

        import numpy as np

        from qemu_arrays.formats.decoding import decode_float

        if self.bits > 16:
            msg = f"values() enumerates formats of at most 16 bits, {self.name} has {self.bits}"
            raise ValueError(msg)
        vals = {decode_float(c, self) for c in range(1 << self.bits)}
        finite = sorted({0.0 if v == 0 else v for v in vals if math.isfinite(v)})
        return np.array(finite, dtype=np.float64)

    def __repr__(self):
        return (
            f"FloatFormat(name={self.name!r}, exponent_bits={self.exponent_bits}, "
            f"mantissa_bits={self.mantissa_bits}, bias={self.bias}, signed={self.signed}, "
            f"subnormals={self.subnormals}, has_zero={self.has_zero}, "
            f"specials=Specials.{self.specials.name})"
        )

    def params(self) -> FormatParams:
        """The primitive parameters the scalar cores take (see ``qemu_arrays.formats.cores``)."""
        e, sig = self._top
        return FormatParams(
            self.mantissa_bits,
            self.emin,
            e,
            sig,
            int(self.subnormals),
            int(self.has_zero),
            int(self.signed),
            int(self.specials),
            self.exponent_bits,
            self.bias,
        )


@dataclass(frozen=True, kw_only=True)
class IntFormat:
    """A two's-complement or unsigned integer format (additive quantization: constant step).

    ``narrow_range`` drops the most negative code so that the grid is symmetric
    (``[-127, 127]`` for int8).
    """

    bits: int
    signed: bool = True
    narrow_range: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self):
        _positive_int("bits", self.bits, 1, 32)
        for flag in ("signed", "narrow_range"):
            if not isinstance(getattr(self, flag), bool):
                msg = f"{flag} must be a bool, got {getattr(self, flag)!r}; hint: True or False"
                raise TypeError(msg)
        check_name(self.name)
        if self.narrow_range and not self.signed:
            msg = "narrow_range=True only applies to signed formats; hint: drop narrow_range"
            raise ValueError(msg)
        if self.signed and self.bits < 2 and self.narrow_range:
            msg = (
                f"narrow_range=True needs at least 2 bits, got bits={self.bits}; hint: drop "
                "narrow_range"
            )
            raise ValueError(msg)
        if not self.name:
            pre = "int" if self.signed else "uint"
            object.__setattr__(
                self, "name", f"{pre}{self.bits}" + ("_narrow" if self.narrow_range else "")
            )

    kind = "int"
    has_inf = False
    has_nan = False
    has_zero = True

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def min(self) -> int:
        if not self.signed:
            return 0
        return -self.max if self.narrow_range else -(1 << (self.bits - 1))

    @property
    def eps(self) -> int:
        return 1

    smallest_normal = 1
    smallest_subnormal = 1

    def values(self):
        import numpy as np

        if self.bits > 16:
            msg = f"values() enumerates formats of at most 16 bits, {self.name} has {self.bits}"
            raise ValueError(msg)
        return np.arange(self.min, self.max + 1, dtype=np.float64)

    def params(self) -> tuple[int, ...]:
        return (self.min, self.max)

    def __repr__(self):
        return (
            f"IntFormat(name={self.name!r}, bits={self.bits}, signed={self.signed}, "
            f"narrow_range={self.narrow_range})"
        )
